"""For development and demonstration only: the embedded emulator (moto server) and ``migrator demo``."""
