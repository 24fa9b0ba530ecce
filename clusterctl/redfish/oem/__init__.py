"""Vendor extensions, one module per vendor; generic code never imports them."""
