"""Excel import of gateways and meters, and Excel export of the lists."""
