"""Settings for the Cleave control plane, read strictly from the environment.

Defaults are the embedded mode (`make demo`, tests): SQLite and a filesystem Celery broker under
`var/`. Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis or RabbitMQ).
The README's settings table lists every variable read here.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import plotly
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from controlplane.env import envbool, envfloat, envint, envlist, envstr, envurl

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("CLEAVE_VAR_DIR") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", False)

_DEV_SECRET_KEY = "cleave-insecure-development-key-only-for-debug"
SECRET_KEY = envstr("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY: not set (required unless DEBUG is on)")
    SECRET_KEY = _DEV_SECRET_KEY
elif len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY: too short (use at least 32 characters)")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"CSRF_TRUSTED_ORIGINS: {_origin!r} must start with http:// or https://")

INSTALLED_APPS = [
    "controlplane.common.admin_site.CleaveAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "controlplane.accounts",
    "controlplane.fleet",
    "controlplane.traffic",
    "controlplane.planning",
    "controlplane.telemetry",
    "controlplane.console",
    "controlplane.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------

_DATABASE_URL = envurl(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'cleave.sqlite3'}",
    schemes={"sqlite", "postgres", "postgresql", "pgsql"},
)
try:
    _database = dj_database_url.parse(_DATABASE_URL, conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60, minimum=0))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: cannot be parsed ({exc.__class__.__name__})") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, Celery worker, beat) share the file: wait for locks, don't fail at once.
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"].update({"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"})
    _database["CONN_MAX_AGE"] = 0
    # Tests that run real worker processes need the test database on disk, where they can see it; one
    # file per test run, so two runs at once (two checkouts, a developer and CI) do not share it.
    _database["TEST"] = {"NAME": str(VAR_DIR / f"test_cleave_{os.getpid()}.sqlite3")}
elif not _database.get("NAME"):
    raise ImproperlyConfigured("DATABASE_URL: no database name in the URL path")
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "console:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# Routers send request records in batches of up to 10,000 (a few MB of JSON).
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# --- Security -------------------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_TLS_PROXY", False) else None
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# API tokens expire by default after this many days; no token lives longer than the maximum.
API_TOKEN_DEFAULT_TTL_DAYS = envint("API_TOKEN_DEFAULT_TTL_DAYS", 90, minimum=1)
API_TOKEN_MAX_TTL_DAYS = envint("API_TOKEN_MAX_TTL_DAYS", 365, minimum=1)

# --- REST API -------------------------------------------------------------------------------------

_RENDERERS = ["rest_framework.renderers.JSONRenderer"]
if DEBUG:
    _RENDERERS.append("rest_framework.renderers.BrowsableAPIRenderer")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.common.permissions.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "controlplane.common.pagination.DefaultPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.common.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": _RENDERERS,
    "DEFAULT_THROTTLE_RATES": {},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Cleave control plane API",
    "DESCRIPTION": "Plans, fleets and traffic for disaggregated LLM inference.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RequestClassEnum": "controlplane.traffic.models.RequestClass",
        "RecordStatusEnum": "controlplane.traffic.models.RecordStatus",
        "NodeStatusEnum": "controlplane.fleet.models.NodeStatus",
        "UserRoleEnum": "controlplane.accounts.models.Role",
        "WorkerRoleEnum": "controlplane.fleet.models.WorkerRole",
        "WorkerStatusEnum": "controlplane.fleet.models.WorkerStatus",
        "PlanStatusEnum": "controlplane.planning.models.PlanStatus",
        "RolloutStatusEnum": "controlplane.planning.models.RolloutStatus",
        "StepStatusEnum": "controlplane.planning.models.StepStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------------------

# Where the filesystem broker keeps messages. A test run (pytest sets PYTEST_VERSION) gets a folder of its
# own, passed on to the worker processes it starts, so two runs at once never take each other's tasks.
if "PYTEST_VERSION" in os.environ and not envstr("CELERY_FILESYSTEM_DIR"):
    os.environ["CELERY_FILESYSTEM_DIR"] = str(VAR_DIR / f"celery-{os.getpid()}")
_CELERY_DIR = Path(envstr("CELERY_FILESYSTEM_DIR") or VAR_DIR / "celery").resolve()
CELERY_BROKER_URL = envurl(
    "CELERY_BROKER_URL",
    envstr("REDIS_URL") or "filesystem://",
    schemes={"filesystem", "redis", "rediss", "amqp", "amqps"},
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("out", "processed", "control"):
        (_CELERY_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_CELERY_DIR / "out"),
        "data_folder_out": str(_CELERY_DIR / "out"),
        "processed_folder": str(_CELERY_DIR / "processed"),
        "control_folder": str(_CELERY_DIR / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = envstr("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = tuple(Queue(name) for name in ("default", "rollout", "telemetry", "profiling"))
CELERY_TASK_ROUTES = {
    "planning.rollout.*": {"queue": "rollout"},
    "telemetry.*": {"queue": "telemetry"},
    "traffic.*": {"queue": "profiling"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

HEARTBEAT_TIMEOUT_S = envfloat("HEARTBEAT_TIMEOUT_S", 30.0, minimum=1.0)
HEARTBEAT_SWEEP_INTERVAL_S = envfloat("HEARTBEAT_SWEEP_INTERVAL_S", 30.0, minimum=1.0)

# Calls to node agents: their timeout, and the CA bundle that verifies agents serving TLS (empty: the system's).
AGENT_CALL_TIMEOUT_S = envfloat("AGENT_CALL_TIMEOUT_S", 5.0, minimum=0.1)
AGENT_CA_BUNDLE = envstr("AGENT_CA_BUNDLE") or ""

# Workload profiles: window length, and how far back the first profiling of a service looks.
PROFILE_WINDOW_S = envfloat("PROFILE_WINDOW_S", 300.0, minimum=1.0)
PROFILE_LOOKBACK_S = envfloat("PROFILE_LOOKBACK_S", 3600.0, minimum=60.0)
PROFILE_INTERVAL_S = envfloat("PROFILE_INTERVAL_S", 60.0, minimum=1.0)
# Classifiers: where their JSON versions live, what they train on, and whether a better one is activated.
CLASSIFIER_STORE_DIR = Path(envstr("CLASSIFIER_STORE_DIR") or VAR_DIR / "models")
CLASSIFIER_TRAINING_DAYS = envint("CLASSIFIER_TRAINING_DAYS", 7, minimum=1)
CLASSIFIER_MIN_TRAINING_ROWS = envint("CLASSIFIER_MIN_TRAINING_ROWS", 1000, minimum=50)
CLASSIFIER_AUTO_ACTIVATE = envbool("CLASSIFIER_AUTO_ACTIVATE", True)

# The engine the planner places on a node whose agent did not say (agents label their nodes with theirs).
CLEAVE_WORKER_ENGINE = envstr("CLEAVE_WORKER_ENGINE", "vllm") or "vllm"
if CLEAVE_WORKER_ENGINE not in ("sim", "vllm", "sglang"):
    raise ImproperlyConfigured(f"CLEAVE_WORKER_ENGINE: {CLEAVE_WORKER_ENGINE!r} is not one of sim, vllm, sglang")
# How often agents send samples: energy integration caps a missing reading's interval at twice this.
TELEMETRY_SAMPLE_INTERVAL_S = envfloat("TELEMETRY_SAMPLE_INTERVAL_S", 10.0, minimum=0.1)

# Scheduled rebalancing: how often the beat looks (each service has its own interval), the strategy of
# auto-approved rollouts, and what "no traffic" means (this many empty profile windows in a row).
REBALANCE_CHECK_INTERVAL_S = envfloat("REBALANCE_CHECK_INTERVAL_S", 60.0, minimum=1.0)
REBALANCE_STRATEGY = envstr("REBALANCE_STRATEGY", "rolling") or "rolling"
if REBALANCE_STRATEGY not in ("rolling", "all-at-once", "canary"):
    raise ImproperlyConfigured(f"REBALANCE_STRATEGY: {REBALANCE_STRATEGY!r} is not one of rolling, all-at-once, canary")
REBALANCE_IDLE_WINDOWS = envint("REBALANCE_IDLE_WINDOWS", 3, minimum=1)
REBALANCE_IDLE_RATE_RPS = envfloat("REBALANCE_IDLE_RATE_RPS", 0.05, minimum=0.001)

# A rollout step claimed by a Celery worker that then died may be taken over after this long.
ROLLOUT_STEP_LEASE_S = envfloat("ROLLOUT_STEP_LEASE_S", 30.0, minimum=1.0)
ROLLOUT_RESUME_INTERVAL_S = envfloat("ROLLOUT_RESUME_INTERVAL_S", 15.0, minimum=1.0)
# Nodes behind their desired generation get their assignment pushed again this often.
ASSIGNMENT_REPUSH_INTERVAL_S = envfloat("ASSIGNMENT_REPUSH_INTERVAL_S", 20.0, minimum=1.0)

# Telemetry retention: raw samples (hours), then minute and hour roll-ups (days). The 1-day window reads
# minute roll-ups and the 1-week window hour roll-ups, hence the minimums.
TELEMETRY_RAW_RETENTION_H = envint("TELEMETRY_RAW_RETENTION_H", 24, minimum=1)
TELEMETRY_MINUTE_RETENTION_D = envint("TELEMETRY_MINUTE_RETENTION_D", 8, minimum=2)
TELEMETRY_HOUR_RETENTION_D = envint("TELEMETRY_HOUR_RETENTION_D", 400, minimum=8)
# Let Prometheus scrape /metrics without a token (only where the network already keeps others out).
METRICS_ALLOW_ANONYMOUS = envbool("METRICS_ALLOW_ANONYMOUS", False)

# Online correction of the perf model: every PERF_CORRECTION_INTERVAL_S the beat compares the worker samples
# taken since its last run (none older than PERF_CORRECTION_LOOKBACK_S) with the model's predictions, per
# model, tier, TP and phase. A key moves only on PERF_CORRECTION_MIN_SAMPLES samples or more, by an
# exponentially weighted mean of the log ratio (weight PERF_CORRECTION_ALPHA on the new window), and its
# factor stays within [PERF_CORRECTION_MIN_FACTOR, PERF_CORRECTION_MAX_FACTOR]. The planner applies the
# factors unless PERF_CORRECTION_APPLY is off.
PERF_CORRECTION_INTERVAL_S = envfloat("PERF_CORRECTION_INTERVAL_S", 300.0, minimum=10.0)
PERF_CORRECTION_LOOKBACK_S = envfloat("PERF_CORRECTION_LOOKBACK_S", 900.0, minimum=60.0)
PERF_CORRECTION_ALPHA = envfloat("PERF_CORRECTION_ALPHA", 0.2, minimum=0.0)
if not 0.0 < PERF_CORRECTION_ALPHA <= 1.0:
    raise ImproperlyConfigured(f"PERF_CORRECTION_ALPHA: {PERF_CORRECTION_ALPHA} is not in (0, 1]")
PERF_CORRECTION_MIN_SAMPLES = envint("PERF_CORRECTION_MIN_SAMPLES", 5, minimum=1)
PERF_CORRECTION_MIN_FACTOR = envfloat("PERF_CORRECTION_MIN_FACTOR", 0.5, minimum=0.01)
PERF_CORRECTION_MAX_FACTOR = envfloat("PERF_CORRECTION_MAX_FACTOR", 2.0, minimum=1.0)
if PERF_CORRECTION_MIN_FACTOR > 1.0:
    raise ImproperlyConfigured(f"PERF_CORRECTION_MIN_FACTOR: {PERF_CORRECTION_MIN_FACTOR} is above 1")
PERF_CORRECTION_APPLY = envbool("PERF_CORRECTION_APPLY", True)

CELERY_BEAT_SCHEDULE = {
    "fleet.sweep_heartbeats": {
        "task": "fleet.sweep_heartbeats",
        "schedule": HEARTBEAT_SWEEP_INTERVAL_S,
    },
    "fleet.repush_assignments": {
        "task": "fleet.repush_assignments",
        "schedule": ASSIGNMENT_REPUSH_INTERVAL_S,
    },
    "traffic.profile_windows": {
        "task": "traffic.profile_windows",
        "schedule": PROFILE_INTERVAL_S,
    },
    "traffic.retrain": {
        "task": "traffic.retrain",
        "schedule": crontab(hour=3, minute=17),
    },
    "planning.rebalance": {
        "task": "planning.rebalance",
        "schedule": REBALANCE_CHECK_INTERVAL_S,
    },
    "planning.rollout.resume": {
        "task": "planning.rollout.resume",
        "schedule": ROLLOUT_RESUME_INTERVAL_S,
    },
    "telemetry.rollup_minutes": {
        "task": "telemetry.rollup_minutes",
        "schedule": 60.0,
    },
    "telemetry.rollup_hours": {
        "task": "telemetry.rollup_hours",
        "schedule": 3600.0,
    },
    "telemetry.enforce_retention": {
        "task": "telemetry.enforce_retention",
        "schedule": 3600.0,
    },
    "telemetry.perf_corrections": {
        "task": "telemetry.perf_corrections",
        "schedule": PERF_CORRECTION_INTERVAL_S,
    },
}

# --- Logging --------------------------------------------------------------------------------------

LOG_LEVEL = (envstr("LOG_LEVEL", "INFO") or "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL: {LOG_LEVEL!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
