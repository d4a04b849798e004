"""machaon.hardware"""
