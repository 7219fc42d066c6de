"""
How bytes on the wire become events and back: SSE, AWS event-stream, the stream pipeline.
"""
