"""The simulated site: virtual RS-485 gateways and meters for the demo, tests and training.

Kept apart from the production drivers (``app/devices``): nothing in ``app/devices`` imports
from here.
"""
