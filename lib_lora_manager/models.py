"""The schema: LoRA files, their user data, tags, the trash and small bits of state.

One row per LoRA file. File facts (what the scanner reads) and user data (what people edit)
share the row on purpose: a moved file keeps its user data by keeping its row, and the library
page sorts and filters on both without joins. Things people filter on are real columns or the
``lora_tags`` join table; JSON is used only for display-only lists.

Times are epoch seconds (floats): portable between SQLite and PostgreSQL and cheap to compare.
Text columns are ``dbtypes`` types: ``FsPath`` for file paths and names (any bytes a file name
holds), ``SafeText``/``SafeString`` for the rest (nothing read from a file can fail a write).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, Table, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .dbtypes import FsPath, SafeString, SafeText


class Base(DeclarativeBase):
    pass


_LIVE = text("trashed_at IS NULL")
_TRASHED = text("trashed_at IS NOT NULL")
_ERROR = text("error IS NOT NULL")
_UNHASHED = text("sha256 IS NULL")
_SHARED = text("copies > 1")
# as each engine writes Generation.favorite.is_(True): SQLite uses a partial index only for a
# WHERE that holds the index's own condition
_FAVORITE_SQLITE = text("favorite IS 1")
_FAVORITE_POSTGRESQL = text("favorite IS true")
# the columns the library pages are sorted by, and those its filters test (see Lora's indexes)
LORA_SORT_COLUMNS = ("sort_name", "added_at", "mtime", "size", "rating", "last_used_at", "use_count")
LORA_FILTER_COLUMNS = ("base_model", "adapter_type", "favorite", "rating", "nsfw", "missing", "use_count",
                       "last_used_at", "added_at", "mtime")
# the same for the history
GENERATION_SORT_COLUMNS = ("started_at", "rating", "duration")
GENERATION_NULLABLE_SORT_COLUMNS = ("rating", "duration")
GENERATION_FILTER_COLUMNS = ("started_at", "status", "source", "rating", "favorite", "group_key", "model_name",
                             "model_hash")


def on_dialect(index, dialect: str) -> bool:
    """Whether a model's index is created on that dialect (``Index.ddl_if``): the comparison of
    the models with a migrated database (autogenerate) leaves another dialect's alone."""
    only = getattr(index, "_ddl_if", None)
    wanted = only.dialect if only is not None else None
    return wanted is None or dialect == wanted or not isinstance(wanted, str) and dialect in wanted


def page_index_columns(sort_column: str, filter_columns: tuple[str, ...], *more: str) -> tuple[str, ...]:
    """A page index: the sort key, the id (every sort's tie-break, so the index is the page's
    order exactly), then the columns filters test. ``more``: columns a partial index's own
    condition tests (SQLite reads the row for them otherwise)."""
    return (sort_column, "id", *more, *(c for c in filter_columns if c != sort_column))


class Lora(Base):
    __tablename__ = "loras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # --- where the file is
    path: Mapped[str] = mapped_column(FsPath, unique=True)  # absolute, as found on disk
    root: Mapped[str] = mapped_column(FsPath)  # the library folder it was found under (as last seen)
    # the library folder's identity (library_roots.id): the same for every machine, whatever path
    # it mounts the folder at; (root_id, relpath) is where the file is
    root_id: Mapped[str | None] = mapped_column(SafeString(32))
    relpath: Mapped[str] = mapped_column(FsPath)  # relative to root, '/' separated
    folder: Mapped[str] = mapped_column(FsPath)  # relpath's directory ('' at the root)
    filename: Mapped[str] = mapped_column(FsPath)
    stem: Mapped[str] = mapped_column(FsPath)
    sdnext_name: Mapped[str] = mapped_column(FsPath, index=True)  # SDNext's network name: stem, '.' -> '_'
    sort_name: Mapped[str] = mapped_column(SafeText)  # lower-cased display name or stem
    format: Mapped[str] = mapped_column(SafeString(16))  # safetensors, pt, ckpt
    # --- file facts from the last scan
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[float] = mapped_column(Float)
    scanned_at: Mapped[float] = mapped_column(Float)
    missing: Mapped[bool] = mapped_column(Boolean, default=False)
    missing_since: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(SafeText)  # why the file could not be read, for this one item
    header_size: Mapped[int | None] = mapped_column(BigInteger)
    sidecar_signature: Mapped[str | None] = mapped_column(SafeText)
    # --- derived from the header
    base_model_detected: Mapped[str] = mapped_column(SafeString(32), default="unknown")
    base_model_source: Mapped[str] = mapped_column(SafeString(16), default="none")
    base_model_sidecar: Mapped[str | None] = mapped_column(SafeString(32))  # from CivitAI/peer sidecars
    adapter_type: Mapped[str] = mapped_column(SafeString(16), default="unknown")
    network_module: Mapped[str | None] = mapped_column(SafeText)
    network_dim: Mapped[int | None] = mapped_column(Integer)
    network_alpha: Mapped[float | None] = mapped_column(Float)
    title: Mapped[str | None] = mapped_column(SafeText)
    output_name: Mapped[str | None] = mapped_column(SafeText)
    training_model: Mapped[str | None] = mapped_column(SafeText)
    resolution: Mapped[str | None] = mapped_column(SafeText)
    epochs: Mapped[int | None] = mapped_column(Integer)
    steps: Mapped[int | None] = mapped_column(Integer)
    architecture: Mapped[str | None] = mapped_column(SafeText)
    trigger_suggestions: Mapped[str | None] = mapped_column(SafeText)  # JSON [[word, count], ...]
    # --- from peers' sidecar files (read-only sources)
    description: Mapped[str | None] = mapped_column(SafeText)
    sidecar_preview: Mapped[str | None] = mapped_column(FsPath)  # file name next to the LoRA
    embedded_preview: Mapped[str | None] = mapped_column(FsPath)  # modelspec.thumbnail, saved in our data folder
    civitai: Mapped[str | None] = mapped_column(SafeText)  # JSON {model_id, version_id, ...}
    sidecar_errors: Mapped[str | None] = mapped_column(SafeText)
    # --- hashes (background worker)
    sha256: Mapped[str | None] = mapped_column(SafeString(64))
    addnet_hash: Mapped[str | None] = mapped_column(SafeString(64), index=True)
    hashed_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    hash_error: Mapped[str | None] = mapped_column(SafeText)
    # --- user data (our database only; model folders may be read-only)
    # effective base model: the user's choice, else a sidecar's, else what the header says
    base_model: Mapped[str] = mapped_column(SafeString(32), default="unknown")
    base_model_user: Mapped[str | None] = mapped_column(SafeString(32))  # the user's override
    display_name: Mapped[str | None] = mapped_column(SafeText)
    favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    rating: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(SafeText)
    nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger_words: Mapped[str | None] = mapped_column(SafeText)  # JSON list; None = not yet seeded
    default_weight: Mapped[float | None] = mapped_column(Float)
    weight_min: Mapped[float | None] = mapped_column(Float)
    weight_max: Mapped[float | None] = mapped_column(Float)
    preview_user: Mapped[str | None] = mapped_column(FsPath)  # image in our data folder
    trashed_at: Mapped[float | None] = mapped_column(Float)
    # lower-cased name, title, tags, trigger words and notes: free text searches one column,
    # through a full-text index the database keeps in step (text_index.py)
    search_text: Mapped[str] = mapped_column(SafeText, default="")
    updated_at: Mapped[float] = mapped_column(Float)
    # kept with each recorded generation, so "last used" and "use count" sort like any column
    use_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_used_at: Mapped[float | None] = mapped_column(Float)

    tags: Mapped[list[Tag]] = relationship(secondary="lora_tags", order_by="Tag.name", lazy="selectin")
    extra: Mapped[LoraMetadata | None] = relationship(cascade="all, delete-orphan", lazy="select", uselist=False)

    __table_args__ = (
        Index("ix_loras_inode_size", "inode", "size"),
        Index("ix_loras_stem", "stem"),
        Index("ix_loras_root_id_relpath", "root_id", "relpath"),
        # the scanner reads the rows of a group of folders at a time
        Index("ix_loras_root_id_folder", "root_id", "folder"),
        # covers the duplicate finder's GROUP BY without reading rows
        Index("ix_loras_sha256_state", "sha256", "missing", "trashed_at"),
        # Pages: one index per sort key, holding only rows not in the trash, with every column a
        # filter tests after the key. A page of any query walks its sort key's index in order,
        # tests the filters on the index entries and stops after the page: no row is read, even
        # for the last page or a filter nothing matches (lora_query.LORAS names them). Filters on
        # other columns are sets of ids from their own index (folder, hashed, error, dupe, hash,
        # tag, free text), which the walk tests by rowid; a query with only those is counted in
        # ix_loras_live, which holds nothing but the ids.
        Index("ix_loras_live", "trashed_at", sqlite_where=_LIVE, postgresql_where=_LIVE),
        # the few in the trash: SQLite counts the rest as every row (counted from the b-tree's
        # pages, not entry by entry) less these
        Index("ix_loras_trashed", "trashed_at", sqlite_where=_TRASHED, postgresql_where=_TRASHED),
        # "folder:x" is x or anything under "x/": PostgreSQL finds a LIKE prefix in an index only
        # with pattern ops when the database's collation is not C. On PostgreSQL the id-set indexes
        # carry the id and trashed_at (its indexes do not hold the row's id by themselves): a
        # count, or the set a negated term leaves out, is read from the index alone
        Index("ix_loras_folder", "folder", postgresql_ops={"folder": "text_pattern_ops"},
              postgresql_include=["trashed_at", "id"]),
        *(Index(f"ix_loras_page_{column}", *page_index_columns(column, LORA_FILTER_COLUMNS, "trashed_at"),
                sqlite_where=_LIVE, postgresql_where=_LIVE)
          for column in LORA_SORT_COLUMNS),
        Index("ix_loras_error", "id", sqlite_where=_ERROR, postgresql_where=_ERROR, postgresql_include=["trashed_at"]),
        # "hashed:": PostgreSQL reads the whole table for "sha256 IS NULL" rather than the hash index
        Index("ix_loras_unhashed", "id", sqlite_where=_UNHASHED, postgresql_where=_UNHASHED,
              postgresql_include=["trashed_at"]),
        # SQLite: the unhashed LoRAs with every column a filter tests, so "hashed:" beside such
        # filters is counted in these entries alone, and "hashed:yes" as the filters' count less
        # them (lora_query), rather than testing every LoRA's id against the set of unhashed ones.
        # sha256 (NULL in each entry) lets SQLite test the index's own condition without the row
        Index("ix_loras_unhashed_filters", "trashed_at", "id", "sha256", *LORA_FILTER_COLUMNS,
              sqlite_where=_UNHASHED).ddl_if(dialect="sqlite"),
        # SQLite: the live LoRAs by id with every column a filter tests: a set's LoRAs (a tag's)
        # beside such filters are tested with one seek each, so "-tag:x" beside them is counted as
        # the filters' count less those (query.Table.page), not by testing each entry against the set
        Index("ix_loras_live_filters", "trashed_at", "id", *LORA_FILTER_COLUMNS,
              sqlite_where=_LIVE).ddl_if(dialect="sqlite"),
        # SQLite: the live LoRAs by base model, type and favourite, then the other columns filters
        # test: "base:sd1 type:lora fav:no" is counted in its range of entries (7.5 ms at 200,000
        # LoRAs), not by testing every live LoRA's (18 ms); the column order is migration 0024's
        Index("ix_loras_base_filters", "base_model", "adapter_type", "favorite", "trashed_at",
              *(c for c in LORA_FILTER_COLUMNS if c not in ("base_model", "adapter_type", "favorite")),
              sqlite_where=_LIVE).ddl_if(dialect="sqlite"),
    )


class LibraryRoot(Base):
    """A library folder, independent of the path any one machine mounts it at (see roots.py)."""

    __tablename__ = "library_roots"

    id: Mapped[str] = mapped_column(SafeString(32), primary_key=True)
    name: Mapped[str] = mapped_column(SafeText)  # the folder's name when first seen, for people
    created_at: Mapped[float] = mapped_column(Float)


class RootMount(Base):
    """Where one machine mounts a library folder. Machine "*" (rows from before root ids): any
    machine that has that path."""

    __tablename__ = "root_mounts"

    machine: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, primary_key=True)
    root_id: Mapped[str] = mapped_column(ForeignKey("library_roots.id", ondelete="CASCADE"), index=True)


class LoraMetadata(Base):
    """The (bounded) safetensors ``__metadata__``: shown in the detail panel, never filtered on.

    Kept out of ``loras`` so page queries stay narrow."""

    __tablename__ = "lora_metadata"

    lora_id: Mapped[int] = mapped_column(ForeignKey("loras.id", ondelete="CASCADE"), primary_key=True)
    metadata_json: Mapped[str] = mapped_column(SafeText)


class LoraHashCopies(Base):
    """How many rows hold each hash among those present and not in the trash: "dupe:" reads the
    few hashes held more than once from a small index instead of grouping every hash. Kept in
    step by triggers on ``loras`` (migration 0009) in the transaction of every write; a
    migration that rebuilds ``loras`` (SQLite batch mode) must create them again."""

    __tablename__ = "lora_hash_copies"

    sha256: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    copies: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_lora_hash_copies_shared", "sha256", sqlite_where=_SHARED, postgresql_where=_SHARED),)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(200), unique=True)  # lower-cased, trimmed


class LoraTag(Base):
    __tablename__ = "lora_tags"

    lora_id: Mapped[int] = mapped_column(ForeignKey("loras.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)

    # a tag's LoRAs from the index alone (counted, or listed for a seek each: lora_query)
    __table_args__ = (Index("ix_lora_tags_tag_id_lora_id", "tag_id", "lora_id"),)


class TrashItem(Base):
    """A file we moved to the trash, so the move can be undone."""

    __tablename__ = "trash_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[str] = mapped_column(SafeString(40), index=True)
    lora_id: Mapped[int | None] = mapped_column(ForeignKey("loras.id", ondelete="SET NULL"))
    original_path: Mapped[str] = mapped_column(FsPath)
    trash_path: Mapped[str] = mapped_column(FsPath)
    trashed_at: Mapped[float] = mapped_column(Float)


def _prompt_search_text(context) -> str:
    """``generations.search_text`` on insert: both prompts, lower-cased."""
    row = context.get_current_parameters()
    return f"{row.get('prompt') or ''}\n{row.get('negative_prompt') or ''}".lower()


class Generation(Base):
    """One image generation (one process_images call), from any tab, the API or our own jobs."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[float] = mapped_column(Float, index=True)
    duration: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(SafeString(16), index=True)  # statuses.GenerationStatus
    source: Mapped[str | None] = mapped_column(SafeString(40))  # statuses.GenerationSource, or a host's own word
    prompt: Mapped[str] = mapped_column(SafeText, default="")
    negative_prompt: Mapped[str] = mapped_column(SafeText, default="")
    seeds: Mapped[str | None] = mapped_column(SafeText)  # JSON list
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    steps: Mapped[int | None] = mapped_column(Integer)
    sampler: Mapped[str | None] = mapped_column(SafeText)
    cfg_scale: Mapped[float | None] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(SafeText, index=True)  # model: finds the few names in use
    model_hash: Mapped[str | None] = mapped_column(SafeString(64))
    infotext: Mapped[str | None] = mapped_column(SafeText)
    error: Mapped[str | None] = mapped_column(SafeText)
    rating: Mapped[int | None] = mapped_column(Integer)
    favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    # a strength sweep or an A/B comparison: its generations share a group key, each has a label
    group_key: Mapped[str | None] = mapped_column(SafeString(40), index=True)
    label: Mapped[str | None] = mapped_column(SafeText)
    # its image and LoRA rows (library LoRAs or not), counted when it is recorded (they never change
    # after): analytics sums them from ix_generations_analytics instead of counting each one's rows
    image_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lora_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the prompts lower-cased once, so free text is a plain LIKE (PostgreSQL's ILIKE is ~5x slower),
    # served by a full-text index (text_index.py)
    search_text: Mapped[str] = mapped_column(SafeText, default=_prompt_search_text, server_default="")

    loras: Mapped[list[GenerationLora]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                       order_by="GenerationLora.position")
    images: Mapped[list[GenerationImage]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                         order_by="GenerationImage.position")

    # one index per sort key with every column a filter tests: a page walks it in order and
    # stops after the page without reading rows (history_query.GENERATIONS names them)
    __table_args__ = (*(Index(f"ix_generations_page_{column}", *page_index_columns(column, GENERATION_FILTER_COLUMNS))
                        for column in GENERATION_SORT_COLUMNS),
                      # every column analytics copies of a window's generations (analytics.SCOPED):
                      # read from this index alone, not from rows that hold the prompts
                      Index("ix_generations_analytics", "started_at", "id", "status", "duration", "model_name",
                            "width", "height", "steps", "rating", "favorite", "image_count", "lora_count", "group_key"),
                      # the favorites, few among many: "fav:yes" alone is counted in their entries
                      # (history_query._fav) instead of in an entry of every generation
                      Index("ix_generations_favorite", "id", sqlite_where=_FAVORITE_SQLITE,
                            postgresql_where=_FAVORITE_POSTGRESQL))


# PostgreSQL walks an index backwards as DESC NULLS FIRST; the history sorts unrated and untimed
# generations last both ways, so "sort:-rating" and "sort:-duration" have an index in that order
# of their own there (SQLite puts NULLs first ascending, so its backward walk is that order)
for _column in GENERATION_NULLABLE_SORT_COLUMNS:
    Index(f"ix_generations_page_{_column}_desc", Generation.__table__.c[_column].desc().nulls_last(),
          Generation.__table__.c.id.desc(),
          *(Generation.__table__.c[c] for c in GENERATION_FILTER_COLUMNS if c != _column)).ddl_if(dialect="postgresql")


class GenerationLora(Base):
    """A LoRA a generation used, as named in its prompt; ``lora_id`` when it resolved to the library."""

    __tablename__ = "generation_loras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    lora_id: Mapped[int | None] = mapped_column(ForeignKey("loras.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(SafeText)
    te_weight: Mapped[float | None] = mapped_column(Float)
    unet_weight: Mapped[float | None] = mapped_column(Float)

    # ``lora:NAME`` in the history looks names up case-insensitively
    __table_args__ = (Index("ix_generation_loras_lower_name", func.lower(name)),
                      # a generation's LoRA rows as analytics copies them (analytics.SCOPED_LORAS)
                      Index("ix_generation_loras_analytics", "generation_id", "id", "lora_id", "te_weight", "unet_weight"))


# The history summed by hour (rollups.py keeps them in step; analytics reads them for a window
# without a History query, so its cost follows the hours and groups, not the generations). An
# hour is started_at // 3600. Written only by rollups.refresh: no ORM classes.
GENERATION_HOURS = Table(
    "generation_hours", Base.metadata,
    Column("hour", BigInteger, nullable=False), Column("model_name", SafeText), Column("width", Integer),
    Column("height", Integer), Column("status", SafeString(16)),
    Column("n", Integer, nullable=False), Column("timed", Integer, nullable=False),  # generations; those with a duration
    Column("stepped", Integer, nullable=False), Column("seconds", Float), Column("steps", BigInteger),  # timed with steps
    Column("images", BigInteger), Column("with_lora", Integer, nullable=False), Column("lora_rows", BigInteger),
    Index("ix_generation_hours_hour", "hour"))
# the generations naming a library LoRA, by hour, LoRA, model and status (``uses``: generations,
# ``lora_rows``: their rows naming it; ratings and favorites summed over those rows)
LORA_USE_HOURS = Table(
    "lora_use_hours", Base.metadata,
    Column("hour", BigInteger, nullable=False), Column("lora_id", Integer, nullable=False),
    Column("model_name", SafeText), Column("status", SafeString(16)),
    Column("uses", Integer, nullable=False), Column("lora_rows", Integer, nullable=False), Column("last_used_at", Float),
    Column("rating_sum", Integer), Column("rated_rows", Integer, nullable=False), Column("favorite_rows", Integer, nullable=False),
    Index("ix_lora_use_hours_hour", "hour"),
    # a window's rows LoRA by LoRA (every column: its sums are read from this index alone, grouped
    # as they come), and its failures alone
    Index("ix_lora_use_hours_lora", "lora_id", "hour", "model_name", "status", "uses", "lora_rows", "last_used_at",
          "rating_sum", "rated_rows", "favorite_rows"),
    Index("ix_lora_use_hours_status", "status", "hour", "lora_id", "model_name", "uses"))
# two library LoRAs in one generation (a < b), by hour: the generations that used both
LORA_PAIR_HOURS = Table(
    "lora_pair_hours", Base.metadata,
    Column("hour", BigInteger, nullable=False), Column("a", Integer, nullable=False), Column("b", Integer, nullable=False),
    Column("generations", Integer, nullable=False),
    Index("ix_lora_pair_hours_hour", "hour"))
# hours whose rows changed since their rollups were summed: marked by triggers on generations and
# generation_loras in the writing transaction (migration 0026), cleared by rollups.refresh
HISTORY_DIRTY_HOURS = Table("history_dirty_hours", Base.metadata, Column("hour", BigInteger, primary_key=True, autoincrement=False))


class GenerationImage(Base):
    __tablename__ = "generation_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str | None] = mapped_column(FsPath)  # where the host saved it (None: not saved)
    thumbnail: Mapped[str | None] = mapped_column(FsPath)  # our own copy when the host did not save
    seed: Mapped[int | None] = mapped_column(BigInteger)
    # the file vanished since (an import saw it gone): the record stays, the image shows as missing
    missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class ImportedImage(Base):
    """An image file an import has read (image_import.py), whatever came of it: a later import
    reads only files whose path, size or modification time changed, and recognises a moved file
    by its size and modification time (the path it had is gone)."""

    __tablename__ = "imported_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(SafeString(16))  # image_import.Outcome
    reason: Mapped[str | None] = mapped_column(SafeText)  # why it was skipped or could not be read
    # the history record it became (or that SDNext's recorder made); None once that was deleted
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"), index=True)


class Job(Base):
    """A generation request from our tab or REST, queued first-in first-out and kept across restarts."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(SafeString(16))  # statuses.JobKind
    status: Mapped[str] = mapped_column(SafeString(16), index=True)  # statuses.JobStatus
    request: Mapped[str] = mapped_column(SafeText)  # JSON: the GenerationRequest (and sweep settings)
    result: Mapped[str | None] = mapped_column(SafeText)  # JSON: images, infotexts, grid
    message: Mapped[str | None] = mapped_column(SafeText)  # why it failed / was interrupted
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    # the process (processes.id) whose worker runs it: only that process's death interrupts it
    owner: Mapped[str | None] = mapped_column(SafeString(32), index=True)


class Process(Base):
    """A process that has the library open (a server, SDNext, a CLI command), with a heartbeat.

    Work in flight (a running job, a journalled file operation) names its owner; another process
    only takes it over once that owner is gone (see processes.py)."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(SafeString(32), primary_key=True)
    host: Mapped[str] = mapped_column(SafeString(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)


class FileOperation(Base):
    """The journal of a move or trash in flight: written before any file moves, removed in the
    transaction that records the result. A row left behind by a dead owner is reconciled."""

    __tablename__ = "file_operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(SafeString(32), index=True)
    kind: Mapped[str] = mapped_column(SafeString(16))  # statuses.FileOperationKind
    batch: Mapped[str | None] = mapped_column(SafeString(40))
    lora_id: Mapped[int | None] = mapped_column(ForeignKey("loras.id", ondelete="SET NULL"))
    plan: Mapped[str] = mapped_column(SafeText)  # JSON {source path: destination path, ...} and the row's new values
    created_at: Mapped[float] = mapped_column(Float)


class Recipe(Base):
    """A saved composition: prompt, negative, LoRAs with weights, generation parameters."""

    __tablename__ = "recipes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(SafeText, unique=True)
    prompt: Mapped[str] = mapped_column(SafeText, default="")
    negative_prompt: Mapped[str] = mapped_column(SafeText, default="")
    loras: Mapped[str] = mapped_column(SafeText, default="[]")  # JSON list of composer entries
    parameters: Mapped[str] = mapped_column(SafeText, default="{}")  # JSON: seed, steps, sampler, size...
    cover: Mapped[str | None] = mapped_column(FsPath)  # image path (our data folder or a generated image)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class State(Base):
    """Small key/value facts that must survive restarts (last scan, last trash batch...)."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(SafeString(100), primary_key=True)
    value: Mapped[str] = mapped_column(SafeText)


def count_unreadable(session) -> int:
    """LoRAs indexed with a read error, out of the trash: the Library header's and a scan's
    "unreadable" (the same number), what ``error:yes`` finds."""
    return session.scalar(select(func.count(Lora.id)).where(live(), Lora.error.is_not(None)))


def live(indexed: bool = False):
    """The condition "not in the trash".

    ``indexed=True`` lets the planner use the partial sort indexes (``trashed_at IS NULL``),
    which is right for paging in sort order. Everywhere else ``+ 0`` hides them: SQLite, lacking
    statistics, would otherwise walk such an index and read every row in random order where one
    sequential scan is several times faster."""
    return Lora.trashed_at.is_(None) if indexed else (Lora.trashed_at + 0).is_(None)



class LoraEmbedding(Base):
    """A LoRA's text as a sentence-embedding vector (recommendations.py): float16 bytes, with the
    model that made it and a hash of the text it was made from, so a vector is made again only
    when the text or the model changes."""

    __tablename__ = "lora_embeddings"

    lora_id: Mapped[int] = mapped_column(ForeignKey("loras.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(SafeText)
    text_hash: Mapped[str] = mapped_column(SafeString(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[float] = mapped_column(Float)


class RecommendationFeedback(Base):
    """What someone did with a recommendation in a context (a prompt, "similar to 12", "used with
    12"): up, down, hide, or added to the composition (an implicit up)."""

    __tablename__ = "recommendation_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    context: Mapped[str] = mapped_column(SafeString(64))  # recommendations.context_key
    lora_id: Mapped[int] = mapped_column(ForeignKey("loras.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(SafeString(8))  # recommendations.FEEDBACK
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_recommendation_feedback_context", "context", "lora_id"),)
