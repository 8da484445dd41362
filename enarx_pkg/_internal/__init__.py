"""Protocol plumbing (OCI wire details, canonical JSON, atomic files, HPKE framing).

Unstable: nothing here is part of the public interface and may change in any release.
"""
