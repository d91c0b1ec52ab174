"""What the notebooks show: plain pictures (:mod:`.pictures`: grids, animations, frame strips, curves) and
model-aware widgets (:mod:`.widgets`: image browser, face editor, style explorer, portrait editor). The top of the library: it may
import any layer below, and nothing below imports it."""
from genlab.viz.pictures import animate_video, frame_strip, image_grid, plot_curve, show_grid, smooth
from genlab.viz.widgets import face_editor, image_browser, portrait_editor, style_explorer

__all__ = ["animate_video", "frame_strip", "image_grid", "plot_curve", "show_grid", "smooth", "face_editor", "image_browser",
           "style_explorer", "portrait_editor"]
