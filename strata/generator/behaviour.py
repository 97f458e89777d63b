"""What the synthetic users do: who they are, when they are active, what a session contains.

The model, in one paragraph: a fixed population of users, each with a country (hence a UTC
offset, a locale and a usual currency), a favourite platform, a plan and a heavy-tailed activity
weight. Most users existed before the range; the rest sign up on a day inside it (anonymous page
views, then a ``signup`` event, from then on identified). On each day a user has a
Poisson-distributed number of sessions, placed at local-time-of-day peaks and never overlapping
(sessions of one user are at least 31 minutes apart, events in a session less than 2 minutes
apart, so gap-based sessionisation reproduces ``session_id``). A session browses
(``page_view``, ``search``) and walks down the funnel ``view_item`` → ``add_to_cart`` →
``begin_checkout`` → ``purchase`` with realistic drop-off; some purchases are refunded hours or
days later, in full or in part. Anonymous visitors who never sign up browse too.

Events are handed to ``emit(ts_ms, obj, event_type, user_id, amount_cents)``; ``ts_ms`` is the
instant the rendered ``event_timestamp`` denotes.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Callable

from strata_core import contract as c
from strata.generator import timestamps as ts

Emit = Callable[[int, dict, str, "str | None", "int | None"], None]

#: code, weight, UTC offsets in minutes (one per user, fixed: no DST), locale, usual currency
COUNTRIES = (
    ("US", 36, (-480, -420, -360, -300), "en-US", "USD"),
    ("IN", 10, (330,), "hi-IN", "USD"),
    ("GB", 8, (0, 60), "en-GB", "GBP"),
    ("DE", 8, (60, 120), "de-DE", "EUR"),
    ("FR", 5, (60,), "fr-FR", "EUR"),
    ("JP", 6, (540,), "ja-JP", "USD"),
    ("BR", 6, (-180,), "pt-BR", "USD"),
    ("CA", 5, (-300, -480), "en-CA", "USD"),
    ("ES", 4, (60,), "es-ES", "EUR"),
    ("MX", 3, (-360,), "es-MX", "USD"),
    ("AU", 3, (600, 660), "en-AU", "USD"),
    ("NP", 1, (345,), "ne-NP", "USD"),
    ("NZ", 1, (780,), "en-NZ", "USD"),
)
PLANS = (("free", 60), ("basic", 22), ("pro", 14), ("team", 4))
SIGNUP_METHODS = (("email", 50), ("google", 30), ("apple", 15), ("facebook", 5))
PLATFORMS = (("web", 50), ("ios", 27), ("android", 23))
#: relative activity by local hour 0..23: quiet nights, evening peak
LOCAL_HOUR_WEIGHTS = (1.0, .6, .4, .3, .3, .5, 1, 2, 3, 3.5, 3.5, 3.5, 4, 3.5, 3.5, 3.5, 4, 4.5, 5, 6,
                      6.5, 6, 4.5, 2.5)
CATEGORIES = ("shoes", "electronics", "Bücher", "家電", "Café & Thé", "jardín", "toys", "outdoor",
              "beauty", "kitchen")
PAGES = ("/", "/products", "/deals", "/blog/größen-guide", "/help", "/account", "/category/shoes",
         "/category/électronique", "/search")
REFERRERS = (None, None, "https://www.google.com/", "https://news.example.org/", "https://t.co/x",
             "android-app://com.example.mail", "https://www.bing.com/")
QUERIES = ("running shoes", "café crème", "東京 ホテル", "naïve art print", "smörgåsbord plate",
           "übergröße jacke", "usb-c cable", "birthday gift", "señal wifi", "😀 stickers", "tv 55 inch")
ERRORS = (("HTTP_500", "Internal Server Error"), ("E_TIMEOUT", "Zeitüberschreitung beim Laden"),
          ("PAYMENT_DECLINED", "支払いに失敗しました"), ("E_NETWORK", "network unreachable"),
          ("JS_TypeError", "Cannot read properties of undefined (reading 'price')"))
REFUND_REASONS = ("damaged", "wrong_size", "not_as_described", "changed_mind", "late_delivery")
CAMPAIGNS = ({"source": "newsletter", "medium": "email", "name": "winter_sale"},
             {"source": "google", "medium": "cpc", "name": "brand"},
             {"source": "instagram", "medium": "social", "name": "été_2026"})
#: unknown top-level fields some producers add; the pipeline keeps them in ``extra``
EXTRA_FIELDS = (("sdk_version", "4.2.1"), ("_debug", True), ("ip", "203.0.113.7"),
                ("writeKey", "wk_test_123"), ("sent_at_local", "maintenant"))

#: timestamp forms per platform: (style, weight)
STYLES = {
    "web": ((ts.Z, 45), (ts.Z_MS, 20), (ts.OFFSET, 25), (ts.OFFSET_MS, 10)),
    "ios": ((ts.OFFSET_MS, 50), (ts.EPOCH_MS, 30), (ts.Z_MS, 20)),
    "android": ((ts.EPOCH_MS, 60), (ts.Z_MS, 20), (ts.OFFSET, 20)),
    "server": ((ts.UTC_US, 50), (ts.Z_MS, 50)),
}

SESSIONS_PER_USER_DAY = 1.0  # mean, before --events scaling; ~4.5 events per session
ANON_SESSIONS_PER_USER_DAY = 0.1  # visitors who never sign up, per population user
NEW_USER_SHARE = 0.3  # share of users who sign up inside the range
EXTRA_FIELD_RATE = 0.02
SESSION_GAP_MS = 31 * 60_000
REFUND_RATE = 0.1  # of purchases; refunded 1 h to 4 days later, in full or in part
#: users file ``created_at`` must pass the same [2000-01-01, ...] rule as event times
MIN_CREATED_MS = int(c.MIN_EVENT_TIME.timestamp() * 1000)


def _picker(rng: random.Random, pairs) -> Callable[[], object]:
    values = [v for v, _ in pairs]
    cum = list(itertools.accumulate(w for _, w in pairs))
    total = cum[-1]
    rnd = rng.random
    bis = bisect.bisect_right
    return lambda: values[bis(cum, rnd() * total)]


class User:
    __slots__ = ("user_id", "anon_id", "country", "offset_min", "suffix", "locale", "currency", "plan",
                 "platform", "weight", "lam", "exp_neg_lam", "signup_day", "signup_method",
                 "created_ms", "signup_ms", "busy_until", "traits")


class Behaviour:
    """Generates users and their sessions; every event goes to ``emit``."""

    def __init__(self, rng: random.Random, start_ms: int, days: int, id_prefix: str, emit: Emit):
        self.rng = rng
        self.start_ms = start_ms
        self.days = days
        self.emit = emit
        self._event_ids = (f"{id_prefix}{n:09x}" for n in itertools.count(1))
        self._session_no = itertools.count(1)
        self._order_no = itertools.count(1)
        self._country = _picker(rng, [(c, c[1]) for c in COUNTRIES])
        self._plan = _picker(rng, PLANS)
        self._method = _picker(rng, SIGNUP_METHODS)
        self._platform = _picker(rng, PLATFORMS)
        self._style = {p: _picker(rng, s) for p, s in STYLES.items()}
        self._hour_cum = list(itertools.accumulate(LOCAL_HOUR_WEIGHTS))
        self.catalog = [
            (f"sku_{i:05d}", CATEGORIES[i % len(CATEGORIES)],
             max(199, min(99_999, int(rng.lognormvariate(math.log(2500), 0.8)) // 100 * 100 + 99)))
            for i in range(400)
        ]
        self.scale = 1.0
        self.anon_ids: list[str] = []

    # ---- population ----------------------------------------------------------------------------

    def make_users(self, n: int) -> list[User]:
        rng = self.rng
        users = []
        for i in range(n):
            u = User()
            country = self._country()
            u.user_id = f"user_{i + 1:07d}"
            u.anon_id = f"anon_{rng.getrandbits(64):016x}"
            u.country = country[0]
            u.offset_min = rng.choice(country[2])
            u.suffix = ts.offset_suffix(u.offset_min)
            u.locale = country[3]
            u.currency = country[4] if rng.random() < 0.75 else "USD"
            u.plan = self._plan()
            u.platform = self._platform()
            u.weight = rng.lognormvariate(0.0, 0.9)
            u.signup_day = rng.randrange(self.days) if rng.random() < NEW_USER_SHARE else None
            u.signup_method = self._method()
            u.signup_ms = None
            u.created_ms = (None if u.signup_day is not None
                            else max(MIN_CREATED_MS, self.start_ms - rng.randrange(1, 730 * ts.DAY_MS)))
            u.busy_until = 0
            u.traits = {"locale": u.locale, "marketing_opt_in": rng.random() < 0.4,
                        "age_band": rng.choice(("18-24", "25-34", "35-44", "45-54", "55+"))}
            if rng.random() < 0.3:
                u.traits["display_name"] = rng.choice(("Zoë", "José", "Łukasz", "Ngọc Anh", "Søren", "美咲"))
            users.append(u)
        mean = sum(u.weight for u in users) / max(1, n)
        for u in users:
            u.weight /= mean
        self.anon_ids = [f"anon_{rng.getrandbits(64):016x}" for _ in range(max(10, n // 2))]
        self.set_scale(1.0, users)
        return users

    def set_scale(self, scale: float, users: list[User]) -> None:
        """Multiply every session rate by ``scale`` (``--events`` targeting)."""
        self.scale = scale
        for u in users:
            u.lam = SESSIONS_PER_USER_DAY * scale * u.weight
            u.exp_neg_lam = math.exp(-u.lam) if u.lam < 30 else 0.0

    def expected_sessions(self, users: list[User]) -> tuple[float, float, int]:
        """(identified sessions, anonymous sessions, signup sessions) expected at the current scale."""
        ident = 0.0
        for u in users:
            active = self.days if u.signup_day is None else self.days - u.signup_day
            ident += u.lam * active
        signups = sum(1 for u in users if u.signup_day is not None)
        return ident, ANON_SESSIONS_PER_USER_DAY * self.scale * len(users) * self.days, signups

    # ---- one day ---------------------------------------------------------------------------------

    def day(self, d: int, users: list[User]) -> None:
        """All sessions starting on range day ``d`` (0-based)."""
        rng = self.rng
        rnd = rng.random
        day_start = self.start_ms + d * ts.DAY_MS
        for u in users:
            sd = u.signup_day
            if sd is not None and sd > d:
                continue
            n = self._poisson(u.lam, u.exp_neg_lam)
            signup_today = sd == d
            if signup_today:
                n += 1
            if not n:
                continue
            starts = sorted(self._start_offset_ms(u.offset_min) for _ in range(n))
            for i, start in enumerate(starts):
                t = day_start + start
                if t < u.busy_until + SESSION_GAP_MS:
                    t = u.busy_until + SESSION_GAP_MS + int(rnd() * 3_600_000)
                if signup_today and i == 0:
                    u.busy_until = self._signup_session(u, t)
                else:
                    u.busy_until = self.session(u, t, self._session_platform(u))
        anon = ANON_SESSIONS_PER_USER_DAY * self.scale * len(users)
        for _ in range(int(anon) + (rnd() < anon - int(anon))):
            self.anonymous_session(day_start + int(rnd() * ts.DAY_MS))

    def _poisson(self, lam: float, exp_neg: float) -> int:
        if lam >= 30:
            return max(0, int(self.rng.gauss(lam, math.sqrt(lam)) + 0.5))
        rnd = self.rng.random
        k = 0
        p = rnd()
        while p > exp_neg:
            k += 1
            p *= rnd()
        return k

    def _start_offset_ms(self, offset_min: int) -> int:
        """Milliseconds after UTC midnight, drawn from the user's local-hour activity curve."""
        rnd = self.rng.random
        hour = bisect.bisect_right(self._hour_cum, rnd() * self._hour_cum[-1])
        local_ms = hour * 3_600_000 + int(rnd() * 3_600_000)
        return (local_ms - offset_min * 60_000) % ts.DAY_MS

    def _session_platform(self, u: User) -> str:
        return u.platform if self.rng.random() < 0.85 else self._platform()

    # ---- events ----------------------------------------------------------------------------------

    def _event(self, etype: str, t: int, u: User | None, uid, anon, sid, platform, style, props,
               ctx, cents=None, currency=None) -> None:
        if u is not None:
            true_ms, stamp = ts.render(t, style, u.offset_min, u.suffix)
        else:
            true_ms, stamp = ts.render(t, style, 0, "+00:00")
        obj = {"event_id": next(self._event_ids), "event_type": etype}
        if uid is not None:
            obj["user_id"] = uid
        if anon is not None:
            obj["anonymous_id"] = anon
        if sid is not None:
            obj["session_id"] = sid
        obj["event_timestamp"] = stamp
        obj["platform"] = platform
        if cents is not None:
            obj["amount"] = cents / 100 if cents % 100 or self.rng.random() < 0.5 else cents // 100
            obj["currency"] = currency
        obj["properties"] = props
        if ctx is not None:
            obj["context"] = ctx
        if platform == "ios" or platform == "android":
            obj["schema_version"] = 1
        if self.rng.random() < EXTRA_FIELD_RATE:
            key, value = self.rng.choice(EXTRA_FIELDS)
            obj[key] = value
        self.emit(true_ms, obj, etype, uid, cents)

    def _context(self, u: User | None, platform: str) -> dict | None:
        rng = self.rng
        locale = u.locale if u is not None else "en-US"
        if platform == "web":
            ctx = {"locale": locale, "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                   "page": {"host": "shop.example.com"}}
        elif platform == "server":
            return {"library": {"name": "strata-python", "version": "0.9.0"}}
        else:
            ctx = {"locale": locale, "app": {"version": "4.2.0", "build": 4021},
                   "device": {"os": "iOS 18.1" if platform == "ios" else "Android 15",
                              "model": "iPhone15,2" if platform == "ios" else "Pixel 9"}}
        if rng.random() < 0.1:
            ctx["campaign"] = rng.choice(CAMPAIGNS)
        return ctx

    def session(self, u: User | None, t: int, platform: str, anon: str | None = None,
                ctx: dict | None = None, sid: str | None = None) -> int:
        """A browse/shop session from ``t``; returns the time of its last event.

        ``u`` None is an anonymous visitor (``anon`` set): no checkout, no purchase.
        """
        rng = self.rng
        rnd = rng.random
        ev = self._event
        style = self._style[platform]()
        if sid is None:
            sid = f"sess_{next(self._session_no):08x}"
        if ctx is None:
            ctx = self._context(u, platform)
        uid = u.user_id if u is not None else None
        if u is not None:
            anon = u.anon_id if platform == "web" else None
        catalog = self.catalog

        def step(t):
            return t + 2_000 + int(rnd() * 88_000)

        for _ in range(1 + (rnd() < 0.55) + (rnd() < 0.25)):
            ev("page_view", t, u, uid, anon, sid, platform, style,
               {"page": rng.choice(PAGES), "referrer": rng.choice(REFERRERS)}, ctx)
            t = step(t)
        if rnd() < 0.3:
            ev("search", t, u, uid, anon, sid, platform, style,
               {"query": rng.choice(QUERIES), "results": rng.randrange(0, 120)}, ctx)
            t = step(t)
        if rnd() < 0.04:
            code, message = rng.choice(ERRORS)
            ev("error", t, u, uid, anon, sid, platform, style, {"code": code, "message": message}, ctx)
            t = step(t)
        if rnd() >= 0.6:
            return t
        cart = []
        for _ in range(1 + (rnd() < 0.5) + (rnd() < 0.3)):
            item_id, category, price = catalog[int(rnd() * len(catalog))]
            ev("view_item", t, u, uid, anon, sid, platform, style,
               {"item_id": item_id, "category": category, "price": price / 100}, ctx)
            t = step(t)
            if rnd() < 0.33:
                qty = 1 if rnd() < 0.8 else rng.randrange(2, 4)
                ev("add_to_cart", t, u, uid, anon, sid, platform, style,
                   {"item_id": item_id, "quantity": qty, "price": price / 100}, ctx)
                cart.append((item_id, qty, price))
                t = step(t)
        if not cart or u is None or rnd() >= 0.55:
            return t
        cents = sum(q * p for _, q, p in cart)
        count = sum(q for _, q, _ in cart)
        ev("begin_checkout", t, u, uid, anon, sid, platform, style,
           {"cart_value": cents / 100, "item_count": count}, ctx)
        t = step(t)
        if rnd() >= 0.72:
            return t
        order_id = f"ord_{next(self._order_no):08d}"
        server = rnd() < 0.3
        ev("purchase", t, u, uid, None if server else anon, sid, "server" if server else platform,
           self._style["server"]() if server else style,
           {"order_id": order_id, "item_count": count,
            "items": [{"item_id": i, "quantity": q} for i, q, _ in cart]},
           self._context(u, "server") if server else ctx, cents, u.currency)
        if rnd() < REFUND_RATE:
            self._refund(u, t, order_id, cents)
        return step(t)

    def _refund(self, u: User, purchase_ms: int, order_id: str, cents: int) -> None:
        rng = self.rng
        t = purchase_ms + 3_600_000 + int(rng.random() ** 2 * 4 * ts.DAY_MS)  # most within a day
        refund = cents if rng.random() < 0.6 or cents < 200 else rng.randrange(100, cents)
        self._event("refund", t, u, u.user_id, None, None, "server", self._style["server"](),
                    {"order_id": order_id, "reason": rng.choice(REFUND_REASONS)},
                    self._context(u, "server"), refund, u.currency)

    def _signup_session(self, u: User, t: int) -> int:
        """Anonymous page views, the ``signup``, then (usually) identified browsing."""
        rng = self.rng
        rnd = rng.random
        platform = u.platform
        style = self._style[platform]()
        sid = f"sess_{next(self._session_no):08x}"
        ctx = self._context(u, platform)
        for _ in range(1 + (rnd() < 0.5) + (rnd() < 0.3)):
            self._event("page_view", t, u, None, u.anon_id, sid, platform, style,
                        {"page": rng.choice(PAGES), "referrer": rng.choice(REFERRERS)}, ctx)
            t += 2_000 + int(rnd() * 88_000)
        u.signup_ms = ts.render(t, style)[0]
        self._event("signup", t, u, u.user_id, u.anon_id, sid, platform, style,
                    {"plan": u.plan, "country": u.country, "method": u.signup_method}, ctx)
        t += 2_000 + int(rnd() * 88_000)
        if rnd() < 0.7:
            return self.session(u, t, platform, ctx=ctx, sid=sid)
        return t

    def anonymous_session(self, t: int) -> int:
        rng = self.rng
        anon = rng.choice(self.anon_ids)
        platform = "web" if rng.random() < 0.7 else self._platform()
        return self.session(None, t, platform, anon=anon)
