"""HTTP: the Quart-Trio app (`app`), its file routes (`files`) and JSON bodies (`bodies`)."""
