"""
Between a route and the upstreams: the plan, the retry and failover loop, the picker, the relay.
"""
