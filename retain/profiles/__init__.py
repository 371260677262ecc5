"""User profiles: what the API serves, computed the same way by the streaming rebuild and by the
Spark batch scoring (activity.py: a user's history as of an instant; model.py: the tenant's current
model version; scoring.py: activity and model to profile)."""
