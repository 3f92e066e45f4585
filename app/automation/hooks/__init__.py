"""REST hooks: subscriptions (Zapier / Make style), the facts they receive
and the job that delivers them (docs/CONTRACT.md "REST hooks").

- :mod:`.subscriptions`: making, listing and removing subscriptions, for
  the API and the Integrations page alike;
- :mod:`.facts`: a delivery row per matching subscription, written in the
  transaction that records the fact (the engine's write-back, the
  unsubscribe path, a form submission);
- :mod:`.payloads`: the body a delivery sends, and a sample per event;
- :mod:`.sender`: the job that claims due deliveries and POSTs them,
  signed with the subscription's secret, with backoff.
"""
