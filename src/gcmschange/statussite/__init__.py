"""The bilingual static status site and its feeds."""
