"""The `hotline` command: run the whole hotline or one part, and administer it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hotline import keys_cli
from hotline.settings import Settings, SettingsError, load_settings

log = logging.getLogger("hotline")

EXIT_USAGE = 2
STDIN_NAME = "<stdin>"  # how `hotline ivr check -` names the menu in its problems


def _setup_logging(settings: Settings, part: str) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s {part}[%(process)d] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces its plugins at INFO on every command; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _db_factory(settings: Settings):  # type: ignore[no-untyped-def]
    from hotline.db import make_engine, make_session_factory

    engine = make_engine(settings.effective_database_url)
    return engine, make_session_factory(engine)


# Commands ------------------------------------------------------------------------------------
def cmd_config_show(settings: Settings, _args: argparse.Namespace) -> int:
    for key, value in settings.masked().items():
        print(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return 0


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from hotline import migrate

    engine, _ = _db_factory(settings)
    migrate.upgrade(engine)
    print(f"database at revision {migrate.current_revision(engine)}")
    return 0


def _print_credentials(credentials: Sequence[object]) -> None:
    if not credentials:
        return
    print("首次登录密码 (first-login passwords; shown once, change them at first login):")
    for cred in credentials:
        print(f"  {cred}")


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import migrate, seed

    if not args.demo:
        print("nothing to seed: pass --demo for the demonstration data", file=sys.stderr)
        return EXIT_USAGE
    engine, factory = _db_factory(settings)
    migrate.upgrade(engine)
    created = seed.seed_demo(factory)
    if not created:
        print("demo data already present; nothing created")
    _print_credentials(created)
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import backup

    try:
        if args.action == "create":
            manifest = backup.create(settings, Path(args.path))
            print(f"backup written to {args.path}: {manifest.summary()}")
        elif args.action == "verify":
            manifest = backup.verify(Path(args.path), expected_sha256=args.expect_sha256)
            print(f"backup {args.path} is intact: {manifest.summary()}")
        else:
            manifest = backup.restore(
                settings, Path(args.path), force=args.force, expected_sha256=args.expect_sha256
            )
            print(f"restored {args.path}: {manifest.summary()}")
    except backup.BackupError as exc:
        print(f"hotline: backup {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_prompts_render(settings: Settings, args: argparse.Namespace) -> int:
    from ivr import prompts

    directory = settings.prompts_dir or prompts.default_prompts_dir()
    try:
        report = prompts.render(directory, force=args.force)
    except prompts.PromptError as exc:
        print(f"hotline: prompts render: {exc}", file=sys.stderr)
        return 1
    print(
        f"prompts in {directory / 'audio' / 'zh'}: rendered {len(report.rendered)}, "
        f"unchanged {len(report.unchanged)}, recorded (kept) {len(report.recorded)}"
    )
    for prompt_id in report.recorded:
        print(f"  kept recorded prompt {prompt_id}")
    return 0


def cmd_ivr_check(settings: Settings, args: argparse.Namespace) -> int:
    """Problems as `<file>:<line>: message` on stderr and exit 1; `-` reads the menu from stdin
    (the admin page checks a menu this way, since the web may not import `ivr`)."""
    from ivr import menu, prompts

    if args.file == "-":
        path = Path(STDIN_NAME)
    else:
        path = Path(args.file) if args.file else (settings.ivr_menu_file() or menu.DEFAULT_MENU)
    try:
        catalog = prompts.load_catalog(settings.prompts_dir or prompts.default_prompts_dir())
        if args.file == "-":
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        problems = menu.check_menu(menu.parse_menu(text, str(path)), catalog)
    except menu.MenuError as exc:
        problems = exc.problems
    except (OSError, UnicodeDecodeError, prompts.PromptError) as exc:
        print(f"hotline: ivr check: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: menu OK")
    return 0


def cmd_speech_check(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from recordings import transcribe

    model_path = Path(args.model) if args.model else settings.vosk_model
    if model_path is None:
        print("hotline: speech check: no model configured (set vosk_model or pass --model)", file=sys.stderr)
        return 1
    sample = Path(args.sample) if args.sample else None
    if sample is None:
        from ivr import prompts

        sample = prompts.find("greeting", root=settings.prompts_dir)
    try:
        started = time.perf_counter()
        model = transcribe.load_model(model_path)
        loaded = time.perf_counter() - started
        print(f"model {model_path} loaded in {loaded:.1f}s")
        if sample is not None:
            started = time.perf_counter()
            text = transcribe.transcribe_wav(model, sample)
            print(f"{sample}: {text or '(nothing recognised)'} ({time.perf_counter() - started:.2f}s)")
    except transcribe.SpeechError as exc:
        print(f"hotline: speech check: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import webserver

    return webserver.run(settings, public=args.public)


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    from hotline import rqworker

    return rqworker.run(settings)


def cmd_sip_worker(settings: Settings, args: argparse.Namespace) -> int:
    from ivr import worker

    return worker.run(settings, args.index, public=args.public)


def cmd_phone(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.sip import softphone

    password = args.password
    if args.password_file:
        # Kept out of the command line, which every user of the PC can read (ps).
        password = Path(args.password_file).read_text(encoding="utf-8").strip()
    if not password:
        print("hotline phone: give --password or --password-file", file=sys.stderr)
        return EXIT_USAGE
    config = softphone.PhoneConfig(
        extension=args.extension,
        password=password,
        server=args.server or f"{settings.sip_host}:{settings.sip_port}",
        port=args.port,
        rtp_port=args.rtp_port,
        wav_in=Path(args.wav_in) if args.wav_in else None,
        wav_out=Path(args.wav_out) if args.wav_out else None,
        auto_answer=not args.ring,
        register=not args.no_register,
    )
    return softphone.Softphone(config).run()


def cmd_registrar(settings: Settings, _args: argparse.Namespace) -> int:
    from ivr import registrar

    return registrar.run(settings)


def cmd_softswitch(settings: Settings, _args: argparse.Namespace) -> int:
    from hotline import processes

    return processes.run(settings, processes.softswitch_specs(settings))


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from hotline import processes

    return processes.serve(settings, print_credentials=_print_credentials)


Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotline", description="12345 政务服务便民热线 (government service hotline)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        return p

    add("serve", cmd_serve, "run every part on this machine, supervised")
    p = add("web", cmd_web, "run the web application (agent desk, portals, APIs)")
    p.add_argument(
        "--public", action="store_true", help="the citizens' side only (portal, Open311) on public_web_port"
    )
    add("softswitch", cmd_softswitch, "run Kamailio and the pool of SIP workers")
    add("worker", cmd_worker, "run an RQ job worker with its scheduler")
    p = add("sip-worker", cmd_sip_worker, "run one pjsua2 SIP worker (started by softswitch/serve)")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--public", action="store_true", help="listen on the public SIP address (no Kamailio)")
    p = add("phone", cmd_phone, "a softphone for a seat: headset (sounddevice) or WAV files in/out")
    p.add_argument("--extension", required=True, help="the seat's extension, e.g. 1001")
    p.add_argument("--password", default="", help="the seat's SIP password")
    p.add_argument("--password-file", help="a file holding the password (not shown by ps)")
    p.add_argument("--server", help="the hotline's SIP address host:port (default: sip_host:sip_port)")
    p.add_argument("--port", type=int, default=0, help="local SIP port (default: any free one)")
    p.add_argument("--rtp-port", type=int, default=0, help="first local RTP port (default: any)")
    p.add_argument("--wav-in", help="what the agent says: a WAV file played (repeated) in each call")
    p.add_argument("--wav-out", help="what the agent hears: recorded to this WAV file (-2, -3 ... after)")
    p.add_argument("--ring", action="store_true", help="let calls ring until `answer` is typed")
    p.add_argument("--no-register", action="store_true", help="take calls sent straight to --port")
    add("registrar", cmd_registrar, "keep Kamailio's seat passwords and the seats' registrations in step")

    config = sub.add_parser("config", help="settings").add_subparsers(dest="config_command", required=True)
    config.add_parser("show", help="print the effective settings, secrets masked").set_defaults(
        func=cmd_config_show
    )
    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate the schema to the newest revision").set_defaults(
        func=cmd_db_upgrade
    )
    p = add("seed", cmd_seed, "create demonstration data")
    p.add_argument("--demo", action="store_true", help="districts, departments and users of 六盘水市")

    prompts = sub.add_parser("prompts", help="voice prompts").add_subparsers(
        dest="prompts_command", required=True
    )
    p = prompts.add_parser("render", help="render missing or changed prompts (recorded ones are kept)")
    p.add_argument(
        "--force", action="store_true", help="render every prompt again (recorded ones are still kept)"
    )
    p.set_defaults(func=cmd_prompts_render)

    ivr = sub.add_parser("ivr", help="IVR menus").add_subparsers(dest="ivr_command", required=True)
    p = ivr.add_parser("check", help="validate a menu: prompts, nodes, reachability, ways out")
    p.add_argument("file", nargs="?", help="menu file, - for stdin (default: the menu the workers run)")
    p.set_defaults(func=cmd_ivr_check)

    speech = sub.add_parser("speech", help="speech recognition").add_subparsers(
        dest="speech_command", required=True
    )
    p = speech.add_parser("check", help="load the vosk model and decode a sample")
    p.add_argument("--model", help="model folder (default: the vosk_model setting)")
    p.add_argument("--sample", help="a mono 16-bit WAV file (default: the rendered greeting prompt)")
    p.set_defaults(func=cmd_speech_check)

    keys_cli.add_parser(sub)

    p = add("backup", cmd_backup, "back up, verify or restore the database and recordings")
    p.add_argument("action", choices=["create", "verify", "restore"])
    p.add_argument("path", help="backup folder (DEST for create, SRC otherwise)")
    p.add_argument("--force", action="store_true", help="restore over a database that holds data")
    p.add_argument(
        "--expect-sha256",
        metavar="DIGEST",
        help="the manifest digest printed at create time; refuses a backup rewritten since",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _setup_logging(settings, args.command)
    func: Command = args.func
    try:
        return func(settings, args)
    except KeyboardInterrupt:
        return 130
