"""tomarena.envs: games as validated data, framings as data files, and the PettingZoo environments."""

from tomarena.envs.framings import FRAMINGS, Framing, get_framing, load_framing, register_framing_dir
from tomarena.envs.games import (
    GAMES,
    DonationGame,
    Equilibrium,
    Game,
    get_game,
    matrix_game,
    prisoners_delight,
    prisoners_dilemma,
    snowdrift,
    stag_hunt,
    symmetric_game,
)
from tomarena.envs.social_dilemma import Observation, SocialDilemmaEnv, env, parallel_env

__all__ = [
    "FRAMINGS", "GAMES", "DonationGame", "Equilibrium", "Framing", "Game", "Observation", "SocialDilemmaEnv",
    "env", "get_framing", "get_game", "load_framing", "matrix_game", "parallel_env", "prisoners_delight",
    "prisoners_dilemma", "register_framing_dir", "snowdrift", "stag_hunt", "symmetric_game",
]
