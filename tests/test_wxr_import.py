"""`chronicle import wxr`: the theme unit test export maps completely (counts taken from the XML here,
independently of the importer), a second run appends nothing, and the read model holds the result."""

from __future__ import annotations

import shutil
import sqlite3
import xml.etree.ElementTree as ET  # the sample is our own trusted file; the importer uses defusedxml
from collections import Counter
from pathlib import Path

import orjson
import pytest

from pipeline.importers.wxr import WxrContext, map_page
from pipeline.importers.wxr_import import import_wxr
from pipeline.importers.wxr_model import WxrItem, WxrSite
from pipeline.importers.wxr_reader import WxrError, read_wxr
from tests.helpers import cli

REPO = Path(__file__).resolve().parent.parent
WXR = REPO / "samples" / "wordpress" / "themeunittestdata.wordpress.xml"
WP = "{https://wordpress.org/export/1.2/}"


def expected() -> dict[str, object]:
    """What the file holds, read with the stdlib parser and no importer code."""
    items = list(ET.parse(WXR).getroot().iter("item"))
    by_type = Counter(i.findtext(f"{WP}post_type") for i in items)
    pages = {i.findtext(f"{WP}post_id"): i for i in items if i.findtext(f"{WP}post_type") == "page"}
    posts = [i for i in items if i.findtext(f"{WP}post_type") == "post"]
    return {
        "pages": len(pages), "posts": len(posts), "attachments": by_type["attachment"],
        "comments": sum(len(i.findall(f"{WP}comment")) for i in items),
        "published_pages": sum(1 for i in pages.values() if i.findtext(f"{WP}status") == "publish"),
        "published_posts": sum(1 for i in posts if i.findtext(f"{WP}status") == "publish"
                               and not i.findtext(f"{WP}post_password")),
        "parents": {pid: i.findtext(f"{WP}post_parent") for pid, i in pages.items()},
        "many_tags": [c.text for i in posts if i.findtext(f"{WP}post_name") == "edge-case-many-tags"
                      for c in i.findall("category") if c.get("domain") == "post_tag"],
        "menus": sum(1 for t in ET.parse(WXR).getroot().iter(f"{WP}term")
                     if t.findtext(f"{WP}term_taxonomy") == "nav_menu"),
    }


def db_rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_import_maps_every_page_and_post_and_accounts_for_the_rest(chronicle) -> None:
    want = expected()
    assert want["pages"] == 21 and want["posts"] == 58  # the sample is the file we think it is
    report = import_wxr(chronicle, WXR)
    assert report.count("mapped", "page") == want["pages"]
    assert report.count("mapped", "post") == want["posts"]
    assert report.count("skipped", "attachment") == want["attachments"]  # remote files, never downloaded
    assert report.count("skipped", "comment") == want["comments"]
    assert report.count("mapped", "menu") == want["menus"]
    assert report.appended == report.events > want["pages"] + want["posts"] and report.duplicates == 0


def test_second_import_appends_nothing(data_dir) -> None:
    first = orjson.loads(cli("import", "wxr", "--json", str(WXR), check=True).stdout)
    second = orjson.loads(cli("import", "wxr", "--json", str(WXR), check=True).stdout)
    assert first["appended"] == first["events"] > 0
    assert second == {**first, "appended": 0, "duplicates": first["events"]}
    table = cli("import", "wxr", str(WXR), check=True).stdout.decode()
    assert "skipped" in table and "attachment" in table and "appended: 0" in table


def test_projection_holds_pages_with_hierarchy_and_posts_with_status(chronicle) -> None:
    want = expected()
    import_wxr(chronicle, WXR)
    chronicle.project(["cms"])
    db = chronicle.settings.projection_db_path
    pages = {pid.rsplit(":", 1)[1]: (parent, status)
             for pid, parent, status in db_rows(db, "SELECT id, parent_id, status FROM pages")}
    assert len(pages) == want["pages"]
    for pid, wp_parent in want["parents"].items():
        parent = pages[pid][0]
        assert (parent is None) if wp_parent == "0" else parent.endswith(f":{wp_parent}"), pid
    assert sum(1 for _, status in pages.values() if status == "published") == want["published_pages"]
    posts = Counter(status for (status,) in db_rows(db, "SELECT status FROM posts"))
    assert posts == {"published": want["published_posts"], "draft": want["posts"] - want["published_posts"]}
    (cats, tags, author), = db_rows(db, "SELECT categories, tags, author FROM posts WHERE slug = 'edge-case-many-tags'")
    assert sorted(orjson.loads(tags)) == sorted(want["many_tags"]) and len(want["many_tags"]) > 20
    assert orjson.loads(cats) and author
    assert len(db_rows(db, "SELECT name FROM navigation")) == want["menus"]
    sections = db_rows(db, "SELECT count(*) FROM page_sections")[0][0]
    assert 0 < sections <= want["pages"]  # one content section per page with a body


def test_local_image_attachment_becomes_image_uploaded(chronicle, tmp_path) -> None:
    media = tmp_path / "uploads"
    media.mkdir()
    shutil.copy(REPO / "samples" / "photos" / "Portrait_1.jpg", media / "canola2.jpg")  # a name the export uses
    report = import_wxr(chronicle, WXR, media_dir=media)
    assert report.count("mapped", "attachment") == 1
    assert report.count("skipped", "attachment") == expected()["attachments"] - 1
    chronicle.project(["media"])
    rows = db_rows(chronicle.settings.projection_db_path, "SELECT filename, status FROM images")
    assert rows == [("canola2.jpg", "pending")]


def test_an_edited_item_gets_new_ids_for_all_its_events() -> None:
    ctx = WxrContext.of(WxrSite(title="Blog", link="https://blog.example"))
    item = WxrItem(post_id="7", post_type="page", status="publish", title="Old", content="<p>x</p>",
                   date_gmt="2020-01-02 03:04:05")
    before = map_page(item, ctx).envelopes
    item.title = "New"
    after = map_page(item, ctx).envelopes
    assert [e["type"] for e in before] == ["PageCreated", "SectionEntryCreated", "PagePublished"]
    assert not {e["id"] for e in before} & {e["id"] for e in after}  # republished, not left a draft
    assert after == map_page(item, ctx).envelopes  # same item, same ids: what makes re-import a no-op


def test_entity_expansion_and_dtds_are_refused(tmp_path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                    "<rss><channel><title>&b;</title></channel></rss>")
    with pytest.raises(WxrError, match="unsafe"):
        list(read_wxr(bomb))
    broken = tmp_path / "broken.xml"
    broken.write_text("<rss><channel><item></channel>")
    with pytest.raises(WxrError, match="well-formed"):
        list(read_wxr(broken))


SMALL_WXR = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:excerpt="http://wordpress.org/export/1.1/excerpt/" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:wp="http://wordpress.org/export/1.1/">
<channel><title>Small</title><link>http://small.example</link>
<wp:wxr_version>1.1</wp:wxr_version><wp:base_blog_url>http://small.example</wp:base_blog_url>
<wp:term><wp:term_id>9</wp:term_id><wp:term_taxonomy>nav_menu</wp:term_taxonomy>
  <wp:term_slug>main</wp:term_slug><wp:term_name>Main</wp:term_name></wp:term>
<item><title>Child</title><wp:post_id>2</wp:post_id><wp:post_type>page</wp:post_type><wp:status>publish</wp:status>
  <wp:post_parent>99</wp:post_parent><wp:post_name>%CE%B1</wp:post_name></item>
<item><title>Old</title><wp:post_id>3</wp:post_id><wp:post_type>revision</wp:post_type><wp:status>inherit</wp:status></item>
<item><title>Gone</title><wp:post_id>4</wp:post_id><wp:post_type>post</wp:post_type><wp:status>trash</wp:status></item>
<item><title>Thing</title><wp:post_id>5</wp:post_id><wp:post_type>product</wp:post_type><wp:status>publish</wp:status></item>
<item><title>Soon</title><wp:post_id>6</wp:post_id><wp:post_type>post</wp:post_type><wp:status>future</wp:status>
  <wp:post_date_gmt>0000-00-00 00:00:00</wp:post_date_gmt><wp:post_date>2031-01-01 10:00:00</wp:post_date>
  <wp:comment><wp:comment_id>1</wp:comment_id></wp:comment></item>
<item><title></title><wp:post_id>7</wp:post_id><wp:post_type>nav_menu_item</wp:post_type><wp:status>publish</wp:status>
  <category domain="nav_menu" nicename="main">Main</category>
  <wp:postmeta><wp:meta_key>_menu_item_type</wp:meta_key><wp:meta_value>post_type</wp:meta_value></wp:postmeta>
  <wp:postmeta><wp:meta_key>_menu_item_object</wp:meta_key><wp:meta_value>page</wp:meta_value></wp:postmeta>
  <wp:postmeta><wp:meta_key>_menu_item_object_id</wp:meta_key><wp:meta_value>2</wp:meta_value></wp:postmeta></item>
<item><title></title><wp:post_id>7</wp:post_id><wp:post_type>nav_menu_item</wp:post_type><wp:status>publish</wp:status>
  <category domain="nav_menu" nicename="main">Main</category></item>
</channel></rss>"""


def test_every_kind_of_skip_is_reported_and_older_wxr_versions_read(chronicle, tmp_path) -> None:
    path = tmp_path / "small.xml"
    path.write_text(SMALL_WXR)
    report = import_wxr(chronicle, path)
    rows = {(v, w, d): n for v, w, d, n in report.rows()}
    assert rows[("mapped", "page", "published")] == 1
    assert rows[("mapped", "post", "draft (was scheduled)")] == 1
    assert rows[("skipped", "revision", "history is not imported, only the current version")] == 1
    assert rows[("skipped", "post", "status trash")] == 1
    assert rows[("skipped", "product", "post type 'product' not modelled")] == 1
    assert rows[("skipped", "comment", "no comment events in Chronicle")] == 1
    assert rows[("skipped", "menu item", "listed twice in the export (second copy ignored)")] == 1
    assert rows[("skipped", "page parent", "not a page in this export (parent_id kept as given)")] == 1
    chronicle.project(["cms"])
    db = chronicle.settings.projection_db_path
    assert db_rows(db, "SELECT slug, parent_id, status FROM pages") == [("α", "wxr:small.example:99", "published")]
    assert db_rows(db, "SELECT status, created_at FROM posts") == [("draft", 1925028000)]  # 2031-01-01T10:00:00Z
    (items,), = db_rows(db, "SELECT items FROM navigation WHERE name = 'main'")
    assert orjson.loads(items) == [{"label": "Child", "page_id": "wxr:small.example:2", "children": []}]


def test_reading_streams_in_flat_memory() -> None:
    import io
    import itertools
    import tracemalloc

    head = (b'<?xml version="1.0"?><rss xmlns:wp="https://wordpress.org/export/1.2/"><channel>'
            b"<title>Big</title><link>http://big.example</link>")
    item = b"<item><title>T</title><wp:post_id>%d</wp:post_id><wp:post_type>post</wp:post_type></item>"

    class Export(io.RawIOBase):
        """A generated export of ``n`` items, never held in memory whole."""

        def __init__(self, n: int) -> None:
            self.chunks = itertools.chain([head], (item % i for i in range(n)), [b"</channel></rss>"])
            self.buffer = b""

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            while len(self.buffer) < len(b) and (chunk := next(self.chunks, None)) is not None:
                self.buffer += chunk
            size = min(len(b), len(self.buffer))
            b[:size], self.buffer = self.buffer[:size], self.buffer[size:]
            return size

    tracemalloc.start()
    try:
        count = sum(1 for _ in read_wxr(io.BufferedReader(Export(50_000))))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 50_001  # the site header + every item
    assert peak < 3_000_000, f"peak {peak} bytes: items are being kept"


def test_an_item_the_log_would_reject_is_skipped_alone_and_ids_stay_bounded(chronicle, tmp_path) -> None:
    long_id = "9" * 300
    huge = "<![CDATA[<p>" + "x" * (chronicle.settings.max_event_bytes + 10) + "</p>]]>"
    path = tmp_path / "odd.xml"
    path.write_text(SMALL_WXR.replace("<wp:post_id>5</wp:post_id><wp:post_type>product</wp:post_type>",
                                      f"<wp:post_id>{long_id}</wp:post_id><wp:post_type>post</wp:post_type>")
                    .replace("<title>Gone</title>", f"<title>Gone</title><content:encoded>{huge}</content:encoded>")
                    .replace("<wp:status>trash</wp:status>", "<wp:status>publish</wp:status>"))
    report = import_wxr(chronicle, path)
    rejected = [(w, d) for v, w, d, _ in report.rows() if v == "skipped" and d.startswith("rejected by the log")]
    assert len(rejected) == 1 and rejected[0][0] == "post" and "bytes, above the" in rejected[0][1], report.rows()
    assert report.count("mapped", "post") == 2 and report.appended == report.events  # the rest went in
