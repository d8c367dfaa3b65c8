"""pyswan.whack"""
