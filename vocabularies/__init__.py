"""Audio concept vocabularies: the three shipped ones and the code that builds them."""
from .vocabulary import SHIPPED, Vocabulary, VocabularyError, load_vocabulary, shipped_vocabularies, write_vocabulary

__all__ = ["SHIPPED", "Vocabulary", "VocabularyError", "load_vocabulary", "shipped_vocabularies", "write_vocabulary"]
