"""Tenant and staff SMS (filled in by the SMS work).  ``SMS_MODELS`` lists its models."""

SMS_MODELS: list = []
