"""Redfish resource families, one module each, as tolerant pydantic models plus the calls that use them."""
