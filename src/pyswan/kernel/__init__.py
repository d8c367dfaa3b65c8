"""pyswan.kernel"""
