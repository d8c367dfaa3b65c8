"""pyswan.pluto"""
