"""DynaStream applications: the command line and the desktop GUI."""
