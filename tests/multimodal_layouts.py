"""Tiny on-disk copies of the two multimodal layouts, written by the tests that need them.

``write_movielens_mm(root)`` writes ``ml-100k/`` (4 items, 3 users),
``ml-100k-plots/movielens100k_details.csv`` (plots for items 1 and 3) and
``ml-100k-posters/`` (items 1 and 2 have a JPEG, item 3 none, item 4 a
corrupt file). ``write_lfm2k_mm(folder)`` writes an ``lfm2k-mm`` folder with 3
artists, a fixed split, the original-id copy, tags, names and three vector
files; artist 2's VGGish row is NaN (missing).
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

ML_GENRES = 19
ML_ITEMS = {  # id: (title, release date, genre flag positions)
    "1": ("Toy Story (1995)", "01-Jan-1995", (3, 4, 5)),
    "2": ("GoldenEye (1995)", "01-Jan-1995", (1, 2, 16)),
    "3": ("Four Rooms (1995)", "01-Jan-1995", (16,)),
    "4": ("Get Shorty (1995)", "01-Jan-1995", (1, 5, 8)),
}
ML_RATINGS = [  # user, item, rating, time
    ("1", "1", 5, 100), ("1", "2", 3, 101), ("1", "3", 4, 102), ("1", "4", 1, 103),
    ("2", "2", 4, 200), ("2", "1", 2, 201), ("2", "4", 5, 202),
    ("3", "3", 3, 300), ("3", "1", 4, 301), ("3", "2", 5, 302),
]
ML_PLOTS = {"1": 'A cowboy doll, "Woody", is threatened by a new spaceman toy.', "3": "Four stories, one hotel."}
POSTER_COLOURS = {"1": (255, 0, 0), "2": (0, 0, 255)}


def jpeg_bytes(colour: tuple[int, int, int], height: int = 12, width: int = 8) -> bytes:
    """A small solid-colour JPEG (portrait, like the posters)."""
    pixels = np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()
    return tf.io.encode_jpeg(pixels, quality=95).numpy()


def write_movielens_mm(root: pathlib.Path) -> pathlib.Path:
    ml = root / "ml-100k"
    ml.mkdir(parents=True)
    (ml / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ML_RATINGS))
    rows = []
    for item, (title, date, genres) in ML_ITEMS.items():
        flags = "|".join("1" if g in genres else "0" for g in range(ML_GENRES))
        rows.append(f"{item}|{title}|{date}||http://example.org/{item}|{flags}\n")
    (ml / "u.item").write_text("".join(rows), encoding="iso-8859-1")
    (ml / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    plots = root / "ml-100k-plots"
    plots.mkdir()
    lines = ["movie_genres,movie_id,movie_title,description,director\n"]
    for item, text in ML_PLOTS.items():
        quoted = text.replace('"', '""')
        lines.append(f'"[1, 2]",{item},"{ML_ITEMS[item][0]}","{quoted}",[\'Someone\']\n')
    (plots / "movielens100k_details.csv").write_text("".join(lines), encoding="utf-8")
    posters = root / "ml-100k-posters"
    posters.mkdir()
    for item, colour in POSTER_COLOURS.items():
        (posters / f"{item}.jpg").write_bytes(jpeg_bytes(colour))
    (posters / "4.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (posters / "README.txt").write_text("not an image")
    return root


LFM_ROWS = [  # remapped user, remapped item, x_label, original user, original item
    (0, 0, 0, 2, 51), (0, 1, 0, 2, 52), (0, 2, 2, 2, 53),
    (1, 1, 0, 7, 52), (1, 0, 1, 7, 51), (1, 2, 2, 7, 53),
    (2, 2, 0, 9, 53), (2, 0, 0, 9, 51), (2, 1, 1, 9, 52),
]
LFM_NAMES = {51: "Groove Armada", 52: "Faithless", 53: "New Order"}
LFM_TAGS = {51: "chillout,electronic", 53: "80s,new wave,post-punk"}  # 52 has no tags


def lfm_vectors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    vggish = rng.normal(size=(3, 4)) * 1000.0  # float64, large norms like the real VGGish vectors
    vggish[1] = np.nan
    return {"vggish.npy": vggish, "whisper.npy": rng.normal(size=(3, 6)).astype(np.float32),
            "all-MiniLM-L6-v2.npy": rng.normal(size=(3, 5)).astype(np.float32)}


def write_lfm2k_mm(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True)
    header = "userID\titemID\trating\tx_label\n"
    (folder / "lfm2k.inter").write_text(header + "".join(f"{u}\t{i}\t1\t{x}\n" for u, i, x, _, _ in LFM_ROWS))
    (folder / "lfm2k_og_ids.inter").write_text(
        header + "".join(f"{ou}\t{oi}\t1\t{x}\n" for _, _, x, ou, oi in LFM_ROWS))
    (folder / "artists.dat").write_text("id\tname\turl\tpictureURL\n" + "".join(
        f"{a}\t{n}\thttp://www.last.fm/music/{a}\t\n" for a, n in LFM_NAMES.items()), encoding="utf-8")
    (folder / "lfm2k_text.tsv").write_text("artistID\ttext\n" + "".join(f"{a}\t{t}\n" for a, t in LFM_TAGS.items()))
    for name, array in lfm_vectors().items():
        np.save(folder / name, array)
    return folder
