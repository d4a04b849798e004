"""machaon.exo"""
