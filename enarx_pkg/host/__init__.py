"""The host agent: creates keeps (one OS process each) and relays sealed bytes to and from them."""
