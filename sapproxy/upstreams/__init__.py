"""
One module per upstream provider kind, and the one HTTP pool they share.
"""
