"""routes_pages.py: the model card as a page for people, grades included."""

from leadml.routes_pages import grades_section, model_page


def test_the_card_page_explains_every_label_and_shows_the_grid(crm_model):
    card = crm_model.scorer.card | {"name": "leadml", "version": "7"}
    page = model_page(card)
    meaning = card["grades"]["meaning"]
    for label in ("fit", "engagement", "grid", "temperature", "stage", "pql"):
        assert f"<th>{label}</th>" in page and meaning[label].split(":")[0] in page
    grid = page[page.index('<table id="grid">') :]
    grid = grid[: grid.index("</table>")]
    assert grid.count("<tr><th>fit ") == 4 and grid.count("engagement ") == 4
    cells = card["grades"]["backtest"]["grid"]
    a1 = next(c for c in cells if c["fit"] == "A" and c["engagement"] == "1")
    assert f"{a1['conversion']:.0%} of {a1['leads']:,}" in grid
    assert "<th>hot</th>" in page and "<th>BoFu</th>" in page


def test_a_model_without_grades_says_to_retrain():
    assert "retrain" in grades_section(None)


def test_what_the_data_cannot_tell_is_listed(flat_model):
    section = grades_section(flat_model.scorer.card["grades"])
    assert "pql is always false" in section and "no activity dates" in section
    assert '<table id="grid">' in section  # a flat export still has fit and engagement
