"""``{% audit_chain_status as status %}`` for the admin index."""

from django import template

from audits.selectors import audit_chain_status as _status

register = template.Library()


@register.simple_tag
def audit_chain_status():
    return _status()
