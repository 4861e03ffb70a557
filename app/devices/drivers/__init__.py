"""Meter drivers: one per protocol family, all with the interface of ``base.MeterDriver``."""
