"""pyswan.auto"""
