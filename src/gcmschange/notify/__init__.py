"""Telling partners: bilingual notices, mail, incidents and the change calendar."""
