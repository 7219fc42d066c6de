"""
One module per client dialect: its bodies to and from the IR, its stream events from IR events.
"""
