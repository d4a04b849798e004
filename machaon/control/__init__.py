"""machaon.control"""
