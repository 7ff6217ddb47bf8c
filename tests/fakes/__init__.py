"""Test doubles that speak the real protocols over real HTTP (LTI platform, BigBlueButton)."""
