"""Text side of FAQ matching: normalisation, greetings, character and pinyin grams. Pure Python, no I/O at call time.

Why each step (measured in bench/chatbot_eval.py): followers type full-width letters, traditional characters,
English product words (demo, CRM, API) and IME homophones; matching on the raw text missed them.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import opencc

MAX_CHARS = 2000  # longer text is cut before anything else: the work per question stays bounded
_T2S = opencc.OpenCC("t2s")

# English (lower case, whole words) -> the Chinese term the FAQ uses. Both the FAQ and the question go through this.
ENGLISH = {
    "demo": "演示",
    "presentation": "演示",
    "crm": "客户管理系统",
    "scrm": "客户管理系统",
    "api": "接口",
    "apis": "接口",
    "openapi": "开放接口",
    "saas": "云版",
    "cloud": "云",
    "price": "价格",
    "prices": "价格",
    "pricing": "价格",
    "cost": "价格",
    "quote": "报价单",
    "quotation": "报价单",
    "trial": "试用",
    "free": "免费",
    "invoice": "发票",
    "fapiao": "发票",
    "refund": "退款",
    "contract": "合同",
    "sso": "单点登录",
    "login": "登录",
    "password": "密码",
    "wecom": "企业微信",
    "wework": "企业微信",
    "wechat": "微信",
    "weixin": "微信",
    "export": "导出",
    "import": "导入",
    "webhook": "回调通知",
    "callback": "回调通知",
    "support": "技术支持",
    "training": "培训",
    "partner": "合作伙伴",
    "agent": "代理商",
    "reseller": "代理商",
    "discount": "优惠",
    "deploy": "部署",
    "deployment": "部署",
    "onpremise": "私有化部署",
    "on-premise": "私有化部署",
    "on-prem": "私有化部署",
    "private": "私有化",
    "security": "安全",
    "backup": "备份",
    "report": "报表",
    "reports": "报表",
    "dashboard": "看板",
    "bot": "机器人",
    "chatbot": "机器人",
    "qrcode": "二维码",
    "qr": "二维码",
    "sales": "销售",
    "lead": "线索",
    "leads": "线索",
    "app": "app",
    "ios": "app",
    "android": "app",
    "mini": "小程序",
    "miniprogram": "小程序",
    "dingtalk": "钉钉",
    "feishu": "飞书",
    "lark": "飞书",
    "iso": "iso",
    "sla": "sla",
    "excel": "excel",
    "csv": "excel",
    "upgrade": "升级",
    "renew": "续费",
    "renewal": "续费",
    "case": "案例",
    "cases": "案例",
    "hr": "招聘",
    "job": "招聘",
    "jobs": "招聘",
    "hi": "你好",
    "hello": "你好",
    "hey": "你好",
    "thanks": "谢谢",
    "thank": "谢谢",
    "thx": "谢谢",
    "ok": "好的",
    "okay": "好的",
    "bye": "再见",
    "vx": "微信",
    "wx": "微信",
    "pdf": "文档",
    "ai": "智能",
}
# Colloquial or misspelt Chinese -> the FAQ's term (longest first, so 企业vx wins over vx).
CHINESE = {
    "企业vx": "企业微信",
    "企业v信": "企业微信",
    "企微": "企业微信",
    "qywx": "企业微信",
    "v信": "微信",
    "威信": "微信",
    "帐号": "账号",
    "帐户": "账号",
    "账户": "账号",
    "公号": "公众号",
    "价钱": "价格",
    "价位": "价格",
    "售价": "价格",
    "几多钱": "多少钱",
    "体验账号": "试用账号",
    "退钱": "退款",
    "退费": "退款",
    "移动端": "手机版",
    "本地化部署": "私有化部署",
    "本地部署": "私有化部署",
    "内网部署": "私有化部署",
    "私有部署": "私有化部署",
    "专用发票": "专票",
    "工作时间": "上班时间",
}
# Paraphrase lexicon: when a follower's word is there, the FAQ's word is added beside it (never replaces it).
EXPAND = {
    "便宜": "优惠 打折",
    "折扣": "优惠 打折",
    "打折": "优惠",
    "活动": "促销 优惠",
    "体验": "试用",
    "试试": "试用",
    "讲讲": "演示",
    "讲解": "演示",
    "当面": "上门 拜访",
    "见面": "上门 拜访",
    "面谈": "上门 拜访",
    "现场": "上门",
    "干嘛": "做什么 功能",
    "干啥": "做什么 功能",
    "是啥": "做什么",
    "删了": "误删 恢复",
    "删错": "误删 恢复",
    "找回": "恢复",
    "后悔": "退款 不满意",
    "不好用": "退款 不满意",
    "续约": "续费",
    "上手": "培训 使用教程",
    "学会": "培训",
    "手册": "使用教程",
    "用起来": "上线 开始用",
    "开通": "上线",
    "转化率": "转化漏斗 报表",
    "提成": "奖励 返利",
    "佣金": "奖励 返利",
    "返现": "返利",
    "招人": "招聘",
    "简历": "招聘",
    "岗位": "招聘",
    "实习": "招聘",
    "二开": "二次开发",
    "改功能": "定制开发",
    "人走了": "员工离职",
    "辞职": "离职",
    "跳槽": "离职",
    "宕机": "稳定 可用性",
    "挂了": "稳定 可用性",
    "崩了": "稳定 可用性",
    "税号": "开票信息",
    "抬头": "开票信息",
    "坐席": "增加账号",
    "席位": "增加账号",
    "加人": "增加账号",
    "付钱": "付款方式",
    "打款": "付款方式",
    "支付": "付款方式",
    "派给": "分配",
    "分给": "分配",
    "评分": "线索打分",
    "意向": "线索打分",
    "推送": "群发",
    "渠道商": "代理商 合作伙伴",
    "经销商": "代理商 合作伙伴",
    "代理": "代理商",
    "加盟": "代理商 合作伙伴",
    "总部": "公司 办公地址",
    "地址": "办公地址",
    "停掉": "注销 停用",
    "删除账号": "注销",
    "渠道码": "渠道活码",
    "参展": "展会",
    "展位": "展会",
    "看板": "报表",
    "数据分析": "报表",
    "带走": "导出",
    "迁移": "导入",
    "迁过来": "导入",
    "资质": "认证",
    "证书": "认证",
    "泄漏": "泄露",
    "卖了": "泄露 安全",
    "自动回复": "智能客服",
    "智能": "智能客服",
    "对接": "打通 集成",
    "集成": "打通",
    "同步": "打通",
    "怎么卖": "价格",
    "报价": "报价单",
    "机房": "私有化部署 服务器",
    "老系统": "导入 历史数据",
    "故障": "响应",
    "宣讲": "演示",
    "合约": "合同",
    "什么是": "是什么 做什么",
    "合适": "适合 行业",
    "适用": "适合 行业",
    "别人": "其他 区别",
    "别家": "其他 区别",
    "竞品": "区别 优势",
    "对手": "竞品 区别 优势",
    "不同": "区别",
    "调接口": "开放接口",
    "拿数据": "开放接口",
    "微信付": "微信支付 付款方式",
    "补差价": "差价 升级",
    "补多少": "差价 升级",
    "晚上": "值班 时间",
    "半夜": "值班 时间",
    "凌晨": "值班 时间",
    "有人管": "值班",
    "第一步": "开始用 上线",
    "刚买": "开始用 上线",
    "买完": "开始用 上线",
    "看到别人": "权限",
    "应聘": "招聘",
    "求职": "招聘",
    "招销售": "招聘",
    "不满足": "定制",
    "贵": "价格",
    "划算": "价格 优惠",
    "多少米": "多少钱",
    "延长": "延期",
    "多给几天": "延长 延期",
    "过期": "到期",
    "来公司": "上门",
    "到公司": "上门",
    "客户故事": "案例",
    "谁在用": "案例 客户",
    "限流": "频率限制",
    "频率": "频率限制",
    "上限": "频率限制",
    "登不上": "登录不上去",
    "登录不了": "登录不上去",
    "登陆": "登录",
    "进不去": "登录不上去",
    "密码错误": "忘记密码",
    "删号": "注销",
    "转账": "对公转账",
    "汇款": "对公转账",
    "电子签": "签合同",
    "盖章": "签合同",
    "签约": "签合同",
    "换版本": "升级",
    "升到": "升级",
    "账号不够": "增加账号",
    "加账号": "增加账号",
    "哪个版本": "版本 区别",
    "售后": "技术支持 联系",
    "联系方式": "联系",
    "安卓": "app 手机版",
    "苹果手机": "app 手机版",
    "批量发": "群发",
    "带参": "带参数的二维码",
    "漏斗": "报表",
    "返点": "代理商",
    "老带新": "推荐 奖励",
    "介绍客户": "推荐客户",
    "角色": "权限",
}
_EXPAND_RE = re.compile("|".join(re.escape(k) for k in sorted(EXPAND, key=len, reverse=True)))
_ENGLISH_WORD = re.compile(r"[a-z][a-z0-9\-]*")
_CHINESE_KEYS = sorted(CHINESE, key=len, reverse=True)
_CHINESE_RE = re.compile("|".join(re.escape(k) for k in _CHINESE_KEYS))
_CJK = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+")
# Words that carry no topic: dropped before grams so coverage counts only content.
_FILLERS = re.compile(
    "请问|麻烦问下|麻烦|问一下|问下|想问|想了解|了解一下|一下|你们|我们|咱们|贵公司|贵司|您好|你好|亲|"
    "那个|这个|就是|的话|呢|吗|嘛|啊|呀|吧|哦|哈|嗯|啦|呗|的|了|么"
)
_GREETINGS = re.compile(
    "^(?:你好|您好|哈喽|嗨|在吗|在不在|在么|有人吗|有人在吗|谢谢|多谢|感谢|谢了|好的|好|嗯|恩|哦|噢|收到|知道了|明白|"
    "早上好|上午好|中午好|下午好|晚上好|早安|晚安|早|再见|拜拜|辛苦了|哈|呵|嘿|哈哈|呵呵|老师|客服|小编|亲|请问|"
    "打扰了|麻烦了|不客气|没事了|没问题|ok|了|啊|呀|吗|呢|啦|嘛|哟|哇|的|吧|么|喂|hi|hello|你们好|大家好|新年快乐|"
    "节日快乐|中秋快乐|国庆快乐|辛苦|棒|赞|厉害|牛|好滴|好哒|可以|行|对|是的|嗯嗯|好嘞|ok了|你|您|大家|各位|老板|美女|帅哥|小姐姐|朋友|早上|晚上|上午|下午|中午)+$"
)


@lru_cache(maxsize=1)
def _pinyin_table() -> dict[str, str]:
    """Character -> toneless syllable, from the table shipped beside this file (bench/chatbot/make_pinyin_table.py)."""
    table: dict[str, str] = {}
    text = (Path(__file__).with_name("faq_pinyin.txt")).read_text(encoding="utf-8")
    for line in text.splitlines():
        syllable, _, chars = line.partition(" ")
        for char in chars:
            table[char] = _fuzzy(syllable)
    return table


def _fuzzy(syllable: str) -> str:
    """Merge what IMEs and southern accents confuse (zh/z, ch/c, sh/s, -ng/-n): homophone typos then collide."""
    for hard, soft in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(hard):
            syllable = soft + syllable[2:]
    return syllable[:-1] if syllable.endswith("ng") else syllable


def _english(match: re.Match[str]) -> str:
    word = match.group(0)
    return ENGLISH.get(word, ENGLISH.get(word.rstrip("s"), word)) + " "


def normalise(text: str) -> str:
    """Full/half width, traditional -> simplified, case, English synonyms and colloquial terms -> the FAQ's terms."""
    text = str(text)[:MAX_CHARS].encode("utf-8", "ignore").decode("utf-8")  # lone surrogates from broken clients
    text = unicodedata.normalize("NFKC", text).lower()
    text = _T2S.convert(text)
    text = _ENGLISH_WORD.sub(_english, text)
    text = _CHINESE_RE.sub(lambda m: CHINESE[m.group(0)], text)
    return " ".join(text.split())


def expand(normalised: str) -> str:
    """The normalised text with the FAQ's words for the follower's paraphrases appended (EXPAND)."""
    extra = {EXPAND[m.group(0)] for m in _EXPAND_RE.finditer(normalised)}
    return " ".join((normalised, *sorted(extra))) if extra else normalised


def content(normalised: str) -> list[str]:
    """The runs of CJK characters and ASCII words that carry the question, fillers removed."""
    return [run for run in _CJK.findall(_FILLERS.sub(" ", normalised))]


def is_greeting(normalised: str) -> bool:
    """Small talk only (你好, 在吗, 谢谢, hi, emoji, punctuation): a question after a greeting is not a greeting."""
    letters = "".join(_CJK.findall(normalised))
    if not letters:  # emoji or stickers only are small talk; bare punctuation (?, ]]>) is not
        return any(unicodedata.category(c) in ("So", "Sk") for c in normalised)
    return bool(_GREETINGS.match(letters))


def char_grams(runs: list[str]) -> list[str]:
    """Character unigrams and bigrams of each CJK run; an ASCII word is one gram."""
    grams: list[str] = []
    for run in runs:
        if run.isascii():
            grams.append(run)
            continue
        grams.extend(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def pinyin_grams(runs: list[str]) -> list[str]:
    """Syllable bigrams (and unigrams of one-character runs): 架格 and 价格 give the same grams."""
    table = _pinyin_table()
    grams: list[str] = []
    for run in runs:
        if run.isascii():
            grams.append(run)
            continue
        syllables = [table.get(c, c) for c in run]
        if len(syllables) == 1:
            grams.append(syllables[0])
        grams.extend(f"{a}_{b}" for a, b in itertools.pairwise(syllables))
    return grams
