"""
One module per client API: its routes and the validation of its bodies.
"""
