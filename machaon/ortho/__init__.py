"""machaon.ortho"""
