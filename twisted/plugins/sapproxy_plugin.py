# The twistd plugins: `twistd sapproxy` and `twistd sapproxy-simulator`.  Imports nothing heavy (no
# reactor): twistd imports every plugin file to list them.
from twisted.application.service import ServiceMaker

sapproxy = ServiceMaker(
    "sapproxy", "sapproxy.tap", "LLM gateway: SAP AI Core deployments as the OpenAI and Anthropic APIs.", "sapproxy"
)
sapproxy_simulator = ServiceMaker(
    "sapproxy-simulator", "sapproxy.simulator.tap", "A simulated SAP AI Core for tests and demos.", "sapproxy-simulator"
)
