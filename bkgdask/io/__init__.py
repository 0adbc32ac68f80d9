"""Files in and out: lean FITS reader, data store, run selection, GADF names, the bundle."""
