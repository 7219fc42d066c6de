"""
sapproxy: serve SAP AI Core model deployments as the OpenAI and Anthropic APIs.

The package is layered so that each layer can be tested without the one above it:

- L{sapproxy.translate}: pure, synchronous converters and stream state machines.
- L{sapproxy.config}, L{sapproxy.upstreams.sap_aicore}, L{sapproxy.dispatch.picker}: configuration and upstream bookkeeping.
- L{sapproxy.dispatch.relay}: moving a streamed upstream body to a client with backpressure.
- L{sapproxy.surfaces}: the Klein routes, one module per client API; L{sapproxy.web}: the frame they run in.
- L{sapproxy.tap}: the twistd plugin's options and service.
"""

__version__ = "0.1.0"
