"""json"""
