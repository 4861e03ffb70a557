"""SMS in the console (outbox, templates, settings, staff alerts) and Twilio's delivery-status
webhook.  ``bp`` is registered by ``create_app``; the webhook is its nested ``sms.webhook``
blueprint, exempt from CSRF and authenticated by Twilio's request signature."""

from app.sms.views import bp

__all__ = ["bp"]
