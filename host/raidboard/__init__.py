"""raidboard host package: boot, console and management of an emulated RAID board."""
