"""machaon.cli"""
