"""
One module per upstream wire format: the IR to its request body, its responses and streams to the IR.
"""
