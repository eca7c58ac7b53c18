"""Plumbing shared verbatim by the spring services. No domain types live here."""
