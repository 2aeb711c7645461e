"""Segments: saved filters over master data and behaviour (AND, OR, NOT), counted and listed in SQL."""
