"""Integrity in the database: the trigger that forbids cycles and cross-scope parents.

Examples:
    >>> from pgpatterns.ddl import attach
    >>> from pgpatterns.trees import tree_guard
    >>> attach(Base.metadata, *tree_guard(Category))  # doctest: +SKIP

What the trigger does, per written row:

* **Inserts** read only rows of the same statement that point at the new key (a new key
  can have no other children) and, on a scoped tree, the parent's scope (the parent row is
  locked ``FOR SHARE``, so a concurrent scope change of the parent waits). No tree lock:
  an uncommitted row cannot become anyone's ancestor.
* **Moves** (an ``UPDATE`` of ``parent_id``) take ``pg_advisory_xact_lock`` on (table,
  scope), held until commit, so moves in one tree (one tenant of a scoped tree) run one at
  a time; then walk the new parent's ancestors one row at a time, each locked
  ``FOR SHARE``. At READ COMMITTED the lock returns the latest committed version of each
  row, so a move committed meanwhile is seen; at REPEATABLE READ and SERIALIZABLE locking
  a row that changed after the transaction's snapshot fails with a serialization failure
  (SQLSTATE 40001), which :func:`~pgpatterns.trees.move` and
  :func:`~pgpatterns.trees.tree_errors` raise as
  :class:`~pgpatterns.errors.TreeConcurrentUpdateError`: roll back and retry the whole
  transaction. A deadlock (40P01, e.g. a raw ``UPDATE`` holding a node's row lock while
  another mover walks through it) is raised the same way.
* **Scope changes** (``UPDATE ... SET tenant_id``) of a node that has children are refused
  (``TreeScopeError``): the children would be stranded in the old scope.

Why ``SECURITY DEFINER``: under row-level security the writer sees only its own rows, so
a trigger running with the writer's rights could not see another tenant's parent and
would accept it. The function runs as its owner, with ``search_path`` pinned to
``pg_catalog, pg_temp`` (``pg_temp`` last, so no temporary object can shadow anything it
uses), and names the table by the trigger's own relation (``TG_RELID::regclass``), never
by an unqualified name: the table may live in any schema and no writer's ``search_path``
matters. Its queries are therefore dynamic (``EXECUTE ... USING``), which also plans each
one for the table as it is now (the parent index once the table has grown), never a plan
cached while the table was empty. A trigger function cannot be called directly, so the
app role can run nothing that returns rows through it.

Warning:
    The function's owner (the role that runs ``create_all``) must see every row: a
    superuser, a role with ``BYPASSRLS``, or one a policy shows all rows to. Under ``FORCE
    ROW LEVEL SECURITY`` an owner without that would see nothing and pass everything, so
    the trigger refuses to run blind (SQLSTATE 42501, "tree guard ... subject to row-level
    security"). At REPEATABLE READ, a scope change of a childless node racing a concurrent
    insert of a child under it is caught only by a composite ``(scope, parent_id)``
    foreign key (tenant-scoped models get one) or at SERIALIZABLE. Needs PostgreSQL 11+.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import OID, REGCLASS

from pgpatterns.ddl import Function, Trigger
from pgpatterns.ddl.base import body_ident, pg_dialect, regname, short_name, type_sql
from pgpatterns.trees.errors import labels
from pgpatterns.trees.model import Tree, tree_of

__all__ = ["lock_stmt", "tree_guard"]

SEARCH_PATH = ("pg_catalog", "pg_temp")


def _literal(value: str) -> str:
    """A SQL string literal, rendered by the dialect (``named``: ``%`` kept as is)."""
    compiled = literal(value, String()).compile(
        dialect=pg_dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def _lock(scope: str | None, row: str) -> str:
    key = "TG_RELID::text" + (f" || ':' || coalesce({row}.{scope}::text, '')" if scope else "")
    return f"PERFORM pg_advisory_xact_lock(hashtextextended({key}, 0));"


def _raise(message: str, args: str, label: str, hint: str = "") -> str:
    hint_sql = f",\n        HINT = {_literal(hint)}" if hint else ""
    return (
        f"RAISE EXCEPTION {_literal(message)}, {args}\n"
        f"        USING ERRCODE = 'check_violation', CONSTRAINT = {_literal(label)}{hint_sql};"
    )


def _scoped_parts(tree: Tree, t: str, key: str, parent: str, scope: str) -> dict[str, str]:
    """The pieces of the body that only a scoped tree has (identifiers quoted by
    :func:`~pgpatterns.ddl.base.body_ident`, messages as literals; no values)."""
    _, label = labels(tree)
    stype = type_sql(pg_dialect(), tree.scope.type) if tree.scope is not None else ""
    return {
        "declare": f"  pscope {stype};\n",
        "unchanged": f" AND NEW.{scope} IS NOT DISTINCT FROM OLD.{scope}",
        "root_exit": (
            f"IF NEW.{parent} IS NULL AND TG_OP = 'UPDATE' "
            f"AND NEW.{scope} IS NOT DISTINCT FROM OLD.{scope} THEN RETURN NEW; END IF;"
        ),
        "insert": f"""
    has_kids := EXISTS (SELECT FROM {t} c WHERE c.{parent} = NEW.{key});
    IF has_kids AND EXISTS (SELECT FROM {t} c WHERE c.{parent} = NEW.{key}
                            AND c.{scope} IS DISTINCT FROM NEW.{scope}) THEN
      {_raise("cannot insert %: rows of another scope name it as their parent",
              f"NEW.{key}", label)}
    END IF;
    first_only := NOT has_kids;  -- check the parent's scope only""",  # noqa: S608
        "scope_change": f"""
    IF NEW.{scope} IS DISTINCT FROM OLD.{scope} THEN
      {_lock(scope, "OLD")}
      IF EXISTS (SELECT FROM {t} c WHERE c.{parent} = OLD.{key}) THEN
        {_raise("cannot change the scope of %: it has children, which would stay in the "
                "old scope", f"OLD.{key}", label,
                "move or delete its children first, then change its scope")}
      END IF;
    END IF;""",
        "cols": f", p.{scope}",
        "into": ", pscope",
        "first_check": f"""
    IF first AND pscope IS DISTINCT FROM NEW.{scope} THEN
      {_raise("cannot make % the parent of %: it belongs to another scope",
              f"NEW.{parent}, NEW.{key}", label,
              "a parent must have the same scope value as its children")}
    END IF;""",
    }


def _guard_body(tree: Tree) -> str:
    t = body_ident(tree.table.name)  # found through the table's own schema (set below)
    key, parent = body_ident(tree.key.name), body_ident(tree.parent.name)
    ktype = type_sql(pg_dialect(), tree.key.type)
    cycle, _ = labels(tree)
    scope = body_ident(tree.scope.name) if tree.scope is not None else None
    if scope:
        part = _scoped_parts(tree, t, key, parent, scope)
    else:
        part = {
            "declare": "", "unchanged": "", "scope_change": "", "cols": "", "into": "",
            "first_check": "",
            "root_exit": f"IF NEW.{parent} IS NULL THEN RETURN NEW; END IF;",
            "insert": f"""
    IF NOT EXISTS (SELECT FROM {t} c WHERE c.{parent} = NEW.{key}) THEN
      RETURN NEW;  -- nothing points at the new row: it cannot close a cycle
    END IF;""",
        }
    blind = _literal(
        "tree guard of % runs as its owner, who is subject to row-level security on that "
        "table, so it would not see every row"
    )
    return f"""
DECLARE
  cur {ktype};
  nxt {ktype};
  seen {ktype}[];
  has_kids boolean := true;
  first boolean := true;
  first_only boolean := false;
{part["declare"]}BEGIN
  IF TG_OP = 'UPDATE' AND NEW.{parent} IS NOT DISTINCT FROM OLD.{parent}{part["unchanged"]}
    THEN RETURN NEW; END IF;
  {part["root_exit"]}
  -- the table's own schema, never the writer's path; restored when the function returns
  PERFORM set_config('search_path',
    'pg_catalog, ' || quote_ident(TG_TABLE_SCHEMA) || ', pg_temp', true);
  IF row_security_active(TG_RELID) THEN
    RAISE EXCEPTION {blind}, TG_RELID::regclass USING ERRCODE = 'insufficient_privilege',
      HINT = 'create the guard as a superuser or a role with BYPASSRLS';
  END IF;
  IF NEW.{parent} = NEW.{key} THEN
    IF TG_OP = 'INSERT' AND EXISTS (SELECT FROM {t} p WHERE p.{key} = NEW.{key}) THEN
      RETURN NEW;  -- a duplicate key, which the primary key refuses: not a cycle
    END IF;
    {_raise("cannot make % its own parent", f"NEW.{key}", cycle)}
  END IF;
  IF TG_OP = 'INSERT' THEN
    -- only rows of this same statement can name a new key as their parent{part["insert"]}
  ELSE{part["scope_change"]}
    IF NEW.{parent} IS NULL THEN RETURN NEW; END IF;
    -- one move at a time per tree; the walk below then sees (or fails on) earlier moves
    {_lock(scope, "NEW")}
  END IF;
  IF NEW.{parent} IS NULL THEN RETURN NEW; END IF;
  cur := NEW.{parent};
  seen := ARRAY[NEW.{key}];
  LOOP
    SELECT p.{parent}{part["cols"]} INTO nxt{part["into"]}
      FROM {t} p WHERE p.{key} = cur FOR SHARE OF p;
    EXIT WHEN NOT FOUND;  -- no such parent: its foreign key refuses the row{part["first_check"]}
    EXIT WHEN first_only OR nxt IS NULL;
    first := false;
    IF nxt = NEW.{key} THEN
      {_raise("cannot move % under %: % is a descendant of %",
              f"NEW.{key}, NEW.{parent}, NEW.{parent}, NEW.{key}", cycle)}
    END IF;
    EXIT WHEN nxt = ANY (seen);  -- a cycle above, not through this row (a corrupt table)
    seen := seen || nxt;
    cur := nxt;
  END LOOP;
  RETURN NEW;
END"""  # noqa: S608


def tree_guard(model: type[Any]) -> tuple[Function, Trigger]:
    """The trigger function and trigger that keep a tree model acyclic in the database.

    Examples:
        >>> from pgpatterns.ddl import attach
        >>> function, trigger = tree_guard(Category)  # doctest: +SKIP
        >>> attach(Base.metadata, function, trigger)  # doctest: +SKIP
        >>> print(trigger.sql())  # doctest: +SKIP
        CREATE TRIGGER categories_tree_guard BEFORE INSERT OR UPDATE OF parent_id ON ...

    The trigger runs before each inserted row and each update of ``parent_id`` (and of the
    scope column) and refuses, with a ``check_violation`` that :func:`move` and
    :func:`tree_errors` translate to
    :class:`~pgpatterns.errors.TreeCycleError` / :class:`~pgpatterns.errors.TreeScopeError`:
    a node as its own parent, a parent that is one of the node's descendants (also within
    one multi-row statement), a parent from another scope (also one the writer cannot see
    under row-level security), and a scope change of a node that has children. Raw SQL,
    bulk ``UPDATE`` and ``COPY`` go through it too. The function is ``SECURITY DEFINER``
    with ``search_path = pg_catalog, pg_temp``; see the module for why, and for what it
    locks.
    """
    tree = tree_of(model)
    name = short_name(tree.table.name, suffix="_tree_guard")
    function = Function(
        name,
        returns="trigger",
        language="plpgsql",
        body=_guard_body(tree),
        schema=tree.table.schema,
        security_definer=True,
        search_path=SEARCH_PATH,
        # the checks' plans are cached (cheap per row) and must never be a seq scan
        # planned while the table was small: every query here has an index path
        settings={"enable_seqscan": "off"},
    )
    columns = [tree.parent.name] + ([tree.scope.name] if tree.scope is not None else [])
    trigger = Trigger(
        name, tree.table, function, timing="before", events=["insert", "update"],
        update_of=columns,
    )
    return function, trigger


def lock_stmt(tree: Tree, scope_value: Any) -> Select[Any]:
    """``SELECT pg_advisory_xact_lock(...)``: the tree lock the trigger takes for a move.

    Examples:
        >>> session.execute(lock_stmt(tree_of(Folder), 42))  # doctest: +SKIP

    :func:`~pgpatterns.trees.move` takes it before writing, so two movers never hold each
    other's row locks while waiting for it (no deadlock between movers).
    """
    relid = cast(cast(func.to_regclass(regname(tree.table.name, tree.table.schema)), REGCLASS),
                 OID)
    key: Any = cast(relid, Text)
    if tree.scope is not None:
        value = literal(scope_value, tree.scope.type) if scope_value is not None else None
        key = key.concat(":").concat(func.coalesce(cast(value, Text), ""))
    return select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0)))
