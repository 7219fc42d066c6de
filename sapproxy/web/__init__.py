"""
The Klein glue: the app, the frame every API route runs in, the operator routes.
"""
