"""pyswan.ike"""
