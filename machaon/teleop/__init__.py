"""machaon.teleop"""
