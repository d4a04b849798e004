"""machaon.sim"""
