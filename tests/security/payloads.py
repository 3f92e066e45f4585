"""Attack corpora shared by the content-attack tests (XSS, SSTI, SSRF).

Every XSS payload marks what it would inject with ``data-xss`` and, if a
script ran, sets ``window.__xss``; a page is safe when neither shows up in
the DOM and no dialog, CSP violation or ``/xss-`` request happened.
Payloads stay under 100 characters so they fit every column they go into.
"""

from __future__ import annotations

XSS = [
    "<script data-xss>window.__xss=1</script>",
    "<img src=x data-xss onerror=window.__xss=1>",
    "<svg data-xss onload=window.__xss=1>",
    '"><img src=x data-xss onerror=window.__xss=1>',
    "'><svg data-xss onload=window.__xss=1>",
    "</textarea></title><script data-xss>window.__xss=1</script>",
    '<a data-xss href="javascript:window.__xss=1">js link</a>',
    "javascript:window.__xss=1",
    "${window.__xss=1}`;window.__xss=1;`",
    '<div data-xss hx-get="/xss-hx" hx-trigger="load">hx</div>',
    '" hx-get="/xss-attr" hx-trigger="load" data-xss="1',
    '<div data-xss hx-on:htmx:load="window.__xss=1">on</div>',
    '<iframe data-xss src="javascript:window.__xss=1"></iframe>',
    "<style data-xss>body{background:url(/xss-css)}</style>",
]

# A plain-text fingerprint of each payload that must be visible on a page
# where the payload is shown escaped (the start of the literal text).
VISIBLE = "<img src=x data-xss onerror=window.__xss=1>"

# Server-side template injection: (template, what it tries).
SSTI_REFUSED_AT_SAVE = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ request.application.__globals__ }}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{{ ''['__class__'] }}",
    "{{ contact.__dict__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ contact|attr('__class__')|attr('__mro__') }}",
    "{{ unclosed",
]

# Accepted at save, but rendering is refused or harmless within the caps.
SSTI_AT_RUNTIME = [
    "{% set c = '__class__' %}{{ ''[c] }}",
    "{% set c = '_' ~ '_class_' ~ '_' %}{{ contact|attr(c) }}",
    "{{ dict.mro() }}",
    "{{ {}.update(a=1) }}",
    "{{ contact.items }}",
    "{{ contact.items() }}",
    "{{ [cycler, joiner] }}",
    "{{ config }}",
    "{{ request }}",
    "{{ lipsum() }}",
    "{{ self }}",
    "{{ cycler }}{{ joiner }}{{ namespace }}",
    "{{ range(10**9)|list|length }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ 'x' * 999999 ~ 'x' * 999999 }}",
    "{{ 9**9**9 }}",
    "{{ '%999999999s'|format(1) }}",
    "{{ 'a'|center(10**9) }}",
    "{{ 'ab'.replace('a', 'a' * 100000) * 100 }}",
    "{% for i in range(9999) %}{% for j in range(9999) %}xy{% endfor %}{% endfor %}",
    "{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}",
    "{{ ''.format_map }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ dict(a=1).items() }}",
    "{% set ns = namespace(x=[]) %}{% set ns.x = ns.x + ns.x %}{{ ns.x }}",
    "{{ ('x' ~ 'y' * 500000) * 4 }}",
]

# Render-time bombs that run into the time cap (1 s each): tried in one
# field only, to keep the suite fast. (Nested loops run out of the loop
# budget first: tests/security/test_template_bombs.py.)
SSTI_SLOW = [
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
]

# Strings that must never appear in anything a template produced.
INTERNALS = (
    "<class",
    "__mro__",
    "subclasses",
    "__globals__",
    "<module",
    "<function",
    "<bound method",
    "<built-in",
    " at 0x",
    "Config",
    "SECRET",
    "test-secret",
    "TemplateReference",
    "Context {",
    "uid=",
)

# Strings that must never appear in an error message either.
LEAKS = ("<class", "<function", "<bound", "<module", "<built-in", "test-secret", "uid=", " at 0x")


def loopback_name() -> str:
    """A host name this machine's /etc/hosts maps to loopback, other than
    ``localhost`` when there is one (e.g. the machine's own name)."""
    try:
        with open("/etc/hosts", encoding="utf-8") as hosts:
            for line in hosts:
                address, *names = line.split("#", 1)[0].split()
                if address.startswith("127.") or address == "::1":
                    for name in names:
                        if name.lower() != "localhost" and "." not in name.rstrip("."):
                            return name
    except (OSError, ValueError):
        pass
    return "localhost"


def ssrf_urls(port: int) -> list[str]:
    """Webhook URLs that point at our own machine or networks, at ``port``
    (where a listener waits to prove nothing connects)."""
    loopback = [
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://LOCALHOST:{port}/",
        f"http://{loopback_name()}:{port}/",  # a name /etc/hosts maps to loopback
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://0:{port}/",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://0x7f.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://127.0.1:{port}/",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
        f"http://127.0.0.1.:{port}/",
        f"https://127.0.0.1:{port}/",
    ]
    other = [
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/_GET",
        "ftp://example.com/",
        "data:text/plain,hello",
        "dict://127.0.0.1:11211/",
        "javascript:alert(1)",
        f"http://user:pass@127.0.0.1:{port}/",
        "//example.com/",
    ]
    return loopback + other
