"""Readers and writers for the files a Parameter Golf bundle is made of."""
