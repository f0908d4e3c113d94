"""tomarena.envs: games as validated data, framings as data files, and the PettingZoo environments."""

from tomarena.envs.framings import FRAMINGS, Framing, get_framing, load_framing, register_framing_dir
from tomarena.envs.games import (
    GAME_KINDS,
    GAMES,
    DonationGame,
    Equilibrium,
    Game,
    GameKind,
    GameLike,
    get_game,
    matrix_game,
    prisoners_delight,
    prisoners_dilemma,
    snowdrift,
    stag_hunt,
    symmetric_game,
)
from tomarena.envs.rg144 import RGGame, rg144_ids  # importing it registers the 144 games rg144/<number>
from tomarena.envs.scenarios import SET_NAMES, STUDY_SETS, scenario_set, set_of
from tomarena.envs.social_dilemma import Observation, SocialDilemmaEnv, env, parallel_env

__all__ = [
    "FRAMINGS", "GAMES", "GAME_KINDS", "DonationGame", "Equilibrium", "Framing", "Game", "GameKind", "GameLike",
    "Observation", "SocialDilemmaEnv", "env", "get_framing", "get_game", "load_framing", "matrix_game", "parallel_env",
    "prisoners_delight", "prisoners_dilemma", "register_framing_dir", "snowdrift", "stag_hunt", "symmetric_game",
    "RGGame", "rg144_ids", "SET_NAMES", "STUDY_SETS", "scenario_set", "set_of",
]
